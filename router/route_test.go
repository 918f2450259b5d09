package router

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
)

func TestSimpleQueryWithStartupTenant(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dacme")
	ctx := testCtx(t)
	var tenant, shard string
	if err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&tenant); err != nil {
		t.Fatal(err)
	}
	if tenant != "acme" {
		t.Fatalf("tenant bound on shard = %q, want acme", tenant)
	}
	if err := c.QueryRow(ctx, "SHOW shardline.shard", pgx.QueryExecModeSimpleProtocol).Scan(&shard); err != nil {
		t.Fatal(err)
	}
	if shard != string(shardOf(t, "acme")) {
		t.Fatalf("SHOW shardline.shard = %q, want %q", shard, shardOf(t, "acme"))
	}
}

// TestTenantsStayOnTheirShards writes 1000 tenants' rows through the router
// and checks on each shard primary that every row sits on its tenant's shard
// and was written with the tenant bound.
func TestTenantsStayOnTheirShards(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS items (tenant_id text NOT NULL, id int NOT NULL, bound text, PRIMARY KEY (tenant_id, id))`)
	c := connect(t, "")
	ctx := testCtx(t)
	const tenants = 1000
	for i := 0; i < tenants; i++ {
		tn := fmt.Sprintf("t%04d", i)
		if _, err := c.Exec(ctx, "SET shardline.tenant = '"+tn+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO items VALUES ($1, 1, current_setting('shardline.tenant')) ON CONFLICT DO NOTHING", tn); err != nil {
			t.Fatalf("insert for %s: %v", tn, err)
		}
	}
	perShard := map[shardline.ShardID]int{}
	for _, s := range env.pg.Shards() {
		rows, err := direct(t, s.ID).Query(ctx, "SELECT tenant_id, bound FROM items WHERE tenant_id LIKE 't____'")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var tn, bound string
			if err := rows.Scan(&tn, &bound); err != nil {
				t.Fatal(err)
			}
			if want := shardOf(t, tn); want != s.ID {
				t.Errorf("tenant %s found on %s, placement says %s", tn, s.ID, want)
			}
			if bound != tn {
				t.Errorf("row of %s written with shardline.tenant = %q", tn, bound)
			}
			perShard[s.ID]++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for id, n := range perShard {
		total += n
		if n < tenants/4 {
			t.Errorf("shard %s holds only %d of %d tenants", id, n, tenants)
		}
	}
	if total != tenants {
		t.Errorf("found %d tenants' rows, want %d", total, tenants)
	}
}

func TestCommentTenantRoutesStatement(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS notes (tenant_id text NOT NULL, body text); DELETE FROM notes`)
	c := connect(t, "")
	ctx := testCtx(t)
	var bound string
	err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant') /* tenant='beta' */").Scan(&bound)
	if err != nil || bound != "beta" {
		t.Fatalf("comment tenant: bound %q, err %v", bound, err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO notes VALUES ('gamma', 'x') /*tenant='gamma',app='test'*/"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := direct(t, shardOf(t, "gamma")).QueryRow(ctx, "SELECT count(*) FROM notes WHERE tenant_id = 'gamma'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("gamma's note on its shard: n=%d err=%v", n, err)
	}
}

func TestNoTenantErrorLeavesSessionUsable(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS items (tenant_id text NOT NULL, id int NOT NULL, bound text, PRIMARY KEY (tenant_id, id))`)
	c := connect(t, "")
	ctx := testCtx(t)
	// What ORMs run right after connecting, before any tenant is known.
	for _, q := range []string{
		"SELECT version()",
		"SELECT current_schema()",
		"SHOW standard_conforming_strings",
		"SHOW transaction isolation level",
		"SET search_path TO public",
		"SELECT t.oid, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'pg_catalog' LIMIT 5",
		"SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
		"SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind = 'r' LIMIT 1",
	} {
		rows, err := c.Query(ctx, q)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
		}
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := c.Exec(ctx, "SELECT * FROM items")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeNoTenant || !strings.Contains(pe.Hint, "/* tenant=") || !strings.Contains(pe.Hint, "SET shardline.tenant") || !strings.Contains(pe.Hint, "options=") {
		t.Fatalf("tenant table without tenant: err %v (hint %q)", err, hintOf(err))
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session unusable after error: %v", err)
	}
	// Same through the simple protocol.
	_, err = c.Exec(ctx, "SELECT * FROM items", pgx.QueryExecModeSimpleProtocol)
	if pgCode(err) != codeNoTenant {
		t.Fatalf("simple protocol: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 2", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil || one != 2 {
		t.Fatalf("session unusable after simple-protocol error: %v", err)
	}
}

func TestBadTenantValues(t *testing.T) {
	c := connect(t, "")
	ctx := testCtx(t)
	_, err := c.Exec(ctx, "SET shardline.tenant = 'has space'")
	if pgCode(err) != codeInvalidParameter {
		t.Fatalf("invalid tenant: %v", err)
	}
	_, err = c.Exec(ctx, "SET shardline.shard = 's2'")
	if pgCode(err) != "55P02" {
		t.Fatalf("SET shardline.shard: %v", err)
	}
	_, err = c.Exec(ctx, "SELECT set_config('shardline.tenant', 'x', false)")
	if pgCode(err) != "42501" {
		t.Fatalf("set_config of the binding: %v", err)
	}
	_, err = c.Exec(ctx, "SHOW shardline.nope")
	if pgCode(err) != "42704" {
		t.Fatalf("unknown router setting: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	// A bad tenant at startup is a fatal error naming the problem.
	_, err = pgx.Connect(ctx, routerDSN("options=-c%20shardline.tenant%3D'bad'"))
	if pgCode(err) != codeInvalidParameter {
		t.Fatalf("startup with invalid tenant: %v", err)
	}
	_, err = pgx.Connect(ctx, strings.Replace(routerDSN(""), "/app?", "/nope?", 1))
	if pgCode(err) != codeInvalidCatalog {
		t.Fatalf("wrong database: %v", err)
	}
}

// TestPinMovesNextTransaction pins a tenant to the other shard in etcd
// while a session is open; the session's next transaction goes there.
func TestPinMovesNextTransaction(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dpin1")
	ctx := testCtx(t)
	var before string
	if err := c.QueryRow(ctx, "SELECT current_setting('port')").Scan(&before); err != nil {
		t.Fatal(err)
	}
	from := shardOf(t, "pin1")
	to := shardline.ShardID("s1")
	if from == to {
		to = "s2"
	}
	if _, err := env.store.PinTenant(ctx, "pin1", to); err != nil {
		t.Fatal(err)
	}
	rev, err := env.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.watcher.WaitRevision(ctx, rev.Revision); err != nil {
		t.Fatal(err)
	}
	var after string
	if err := c.QueryRow(ctx, "SELECT current_setting('port')").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatalf("transaction after pin still on port %s", after)
	}
	var shard string
	if err := c.QueryRow(ctx, "SHOW shardline.shard", pgx.QueryExecModeSimpleProtocol).Scan(&shard); err != nil || shard != string(to) {
		t.Fatalf("SHOW shardline.shard after pin = %q, %v; want %s", shard, err, to)
	}
	if env.router.MapRevision() < rev.Revision {
		t.Fatalf("router reports map revision %d, placement is at %d", env.router.MapRevision(), rev.Revision)
	}
}
