package router

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRowLevelSecurityWithTheBinding: with a row-level security policy on
// current_setting('shardline.tenant'), sessions of two tenants on the same
// shard, sharing the pool's server connections in turn, each see only their
// own rows (invariant 3, enforced by the shard too).
func TestRowLevelSecurityWithTheBinding(t *testing.T) {
	applySchema(t, `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rls_app') THEN CREATE ROLE rls_app NOLOGIN; END IF;
END $$;
CREATE TABLE IF NOT EXISTS secrets (tenant_id text NOT NULL, v text);
GRANT SELECT, INSERT ON secrets TO rls_app;
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS by_tenant ON secrets;
CREATE POLICY by_tenant ON secrets USING (tenant_id = current_setting('shardline.tenant', true))
  WITH CHECK (tenant_id = current_setting('shardline.tenant', true));
DELETE FROM secrets;`)
	// Two tenants on the same shard.
	a := "rls-a"
	b := ""
	for i := 0; b == ""; i++ {
		if tn := fmt.Sprintf("rls-b%d", i); shardOf(t, tn) == shardOf(t, a) {
			b = tn
		}
	}
	ctx := testCtx(t)
	// A router of one loop: its sessions share one pool per member (with
	// more loops, each loop has pools of its own).
	_, acmeDSN := startRouter(t, Config{PoolSize: testPoolSize, Loops: 1, WaitTimeout: 5 * time.Second})
	dsnOf := func(tenant string) string { return strings.Replace(acmeDSN, "tenant%3Dacme", "tenant%3D"+tenant, 1) }
	open := func(tenant string) *pgx.Conn {
		c := connectDSN(t, dsnOf(tenant))
		if _, err := c.Exec(ctx, "SET ROLE rls_app"); err != nil { // a role without BYPASSRLS
			t.Fatal(err)
		}
		return c
	}
	ca, cb := open(a), open(b)
	// Hold all but one of the shard's server connections in open
	// transactions, so a and b take turns on the same one and its tenant
	// binding changes every time.
	for i := 0; i < testPoolSize-1; i++ {
		h := connectDSN(t, dsnOf(a))
		tx, err := h.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	}
	pids := map[uint32]bool{}
	for i := 0; i < 20; i++ {
		for _, s := range []struct {
			c      *pgx.Conn
			tenant string
		}{{ca, a}, {cb, b}} {
			if _, err := s.c.Exec(ctx, "INSERT INTO secrets VALUES ($1, $2)", s.tenant, fmt.Sprint(i)); err != nil {
				t.Fatalf("insert as %s: %v", s.tenant, err)
			}
			var mine, others int
			if err := s.c.QueryRow(ctx, "SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id <> $1) FROM secrets", s.tenant).Scan(&mine, &others); err != nil {
				t.Fatal(err)
			}
			if mine != i+1 || others != 0 {
				t.Fatalf("round %d, tenant %s sees %d own rows and %d of others", i, s.tenant, mine, others)
			}
			var pid uint32
			if err := s.c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
	}
	if len(pids) != 1 {
		t.Fatalf("the two tenants used %d server connections; the test needs them to share one", len(pids))
	}
	// The policy also refuses a write for another tenant.
	if _, err := ca.Exec(ctx, "INSERT INTO secrets VALUES ($1, 'x')", b); pgCode(err) != "42501" {
		t.Fatalf("insert of another tenant's row: %v", err)
	}
}
