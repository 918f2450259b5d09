package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/postgres"
)

// TestRowLevelSecurityWithTheBinding: with a row-level security policy on
// current_setting('shardline.tenant'), sessions of two tenants on the same
// shard, sharing the pool's server connections in turn, each see only their
// own rows (invariant 3, enforced by the shard too). The router's server
// role (shardline_app) is neither superuser nor BYPASSRLS, so the policy
// binds its sessions as they are.
func TestRowLevelSecurityWithTheBinding(t *testing.T) {
	applySchema(t, `
CREATE TABLE IF NOT EXISTS secrets (tenant_id text NOT NULL, v text);
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
	open := func(tenant string) *pgx.Conn { return connectDSN(t, dsnOf(tenant)) }
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

// TestRouterSessionsAreBoundByTenantPolicies: with the tenant schema that
// schema apply installs (postgres.ApplyTenantSchema), a router session as
// it comes, without SET ROLE, runs as shardline_app and sees and writes
// only its tenant's rows.
func TestRouterSessionsAreBoundByTenantPolicies(t *testing.T) {
	needCluster(t)
	ctx := testCtx(t)
	for _, s := range env.pg.Shards() {
		if _, err := postgres.ApplyTenantSchema(ctx, s.Primary.DSN, `
CREATE TABLE IF NOT EXISTS rls_notes (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
DELETE FROM rls_notes;`, "tenant_id"); err != nil {
			t.Fatalf("schema on %s: %v", s.ID, err)
		}
	}
	// Rows of acme and of hooli, written as postgres on acme's shard.
	var primary string
	for _, s := range env.pg.Shards() {
		if s.ID == shardOf(t, "acme") {
			primary = s.Primary.DSN
		}
	}
	if err := postgres.ApplySchema(ctx, primary, `INSERT INTO rls_notes VALUES ('acme', 1, 'a'), ('hooli', 1, 'h')`); err != nil {
		t.Fatal(err)
	}
	_, acmeDSN := startRouter(t, Config{PoolSize: testPoolSize, WaitTimeout: 5 * time.Second})
	c := connectDSN(t, acmeDSN)
	var user string
	var super string
	if err := c.QueryRow(ctx, "SELECT current_user, current_setting('is_superuser') FROM rls_notes LIMIT 1").Scan(&user, &super); err != nil {
		t.Fatal(err)
	}
	if user != postgres.AppRole || super != "off" {
		t.Fatalf("the router's sessions run as %s (superuser %s), want %s, not a superuser", user, super, postgres.AppRole)
	}
	var tenants []string
	rows, err := c.Query(ctx, "SELECT tenant_id FROM rls_notes ORDER BY tenant_id")
	if err != nil {
		t.Fatal(err)
	}
	if tenants, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(tenants) != 1 || tenants[0] != "acme" {
		t.Fatalf("acme sees the rows of %v, want only acme's", tenants)
	}
	if _, err := c.Exec(ctx, "INSERT INTO rls_notes VALUES ('hooli', 2, 'forged')"); pgCode(err) != "42501" {
		t.Fatalf("acme inserting a row of hooli: %v, want 42501", err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO rls_notes VALUES ('acme', 2, 'mine')"); err != nil {
		t.Fatalf("acme inserting its own row: %v", err)
	}
}

// TestRouterRefusesSuperuserServerRole: a shard whose server_user is a
// superuser (postgres) gets no server connections (28000, naming the shard
// and the role), unless Config.AllowSuperuser.
func TestRouterRefusesSuperuserServerRole(t *testing.T) {
	needCluster(t)
	p := *env.watcher.Current()
	p.Shards = maps.Clone(p.Shards)
	for id, s := range p.Shards {
		s.ServerUser = "postgres"
		p.Shards[id] = s
	}
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			_, addr := serveRouter(t, Config{Placement: staticPlacement{&p}, PoolSize: 2, WaitTimeout: 5 * time.Second,
				NoIOUring: testNoIOUring, AllowSuperuser: allow})
			ctx := testCtx(t)
			c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@%s/app?sslmode=disable&options=-c%%20shardline.tenant%%3Dacme", addr))
			if err != nil {
				if !allow && pgCode(err) == "28000" { // the greeting needs a server connection of the first shard
					checkRefusal(t, err, anyShard(&p))
					return
				}
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			var user string
			err = c.QueryRow(ctx, "SELECT current_user").Scan(&user)
			if allow {
				if err != nil || user != "postgres" {
					t.Fatalf("with AllowSuperuser: user %q, %v", user, err)
				}
				return
			}
			checkRefusal(t, err, p.Locate("acme").Shard)
		})
	}
}

func checkRefusal(t *testing.T, err error, shard shardline.ShardID) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "shard "+string(shard)) ||
		!strings.Contains(pe.Message, `"postgres" is a superuser`) || !strings.Contains(pe.Hint, "server_user") {
		t.Fatalf("a superuser server role: %v, want 28000 naming shard %s and role postgres", err, shard)
	}
}
