package shardmgr_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestApplySchemaOnPostgres runs schema changes on real shard primaries.
func TestApplySchemaOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := t.Context()
	pg := pgtest.ForTest(t, 2, 0)
	shards := pg.Shards()
	m, _ := newManager(t, shards, nil)

	tableExists := func(dsn, table string) bool {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	res, err := m.ApplySchema(ctx, `
		CREATE TABLE accounts (tenant_id text NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
		CREATE INDEX ON accounts (id);`)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.OK || r.Shard != shards[i].ID {
			t.Errorf("result %d = %+v", i, r)
		}
		if !tableExists(shards[i].Primary.DSN, "accounts") {
			t.Errorf("no accounts table on %s", r.Shard)
		}
	}

	// A table that exists only on s2 makes the change fail there after it
	// committed on s1.
	if err := postgres.ApplySchema(ctx, shards[1].Primary.DSN, "CREATE TABLE invoices (tenant_id text)"); err != nil {
		t.Fatal(err)
	}
	res, err = m.ApplySchema(ctx, "CREATE TABLE invoices (tenant_id text); CREATE TABLE audit (tenant_id text)")
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].OK || res[1].OK || !strings.Contains(res[1].Error, "already exists") {
		t.Fatalf("results %+v", res)
	}
	// s2's transaction rolled back as a whole.
	if !tableExists(shards[0].Primary.DSN, "audit") || tableExists(shards[1].Primary.DSN, "audit") {
		t.Error("audit should exist on s1 only")
	}

	// A script that fails everywhere fails on s1 and is not run on s2.
	res, err = m.ApplySchema(ctx, "CREATE TABLE broken (")
	if err != nil {
		t.Fatal(err)
	}
	if res[0].OK || !strings.Contains(res[0].Error, "syntax error") || res[1].OK || !strings.Contains(res[1].Error, "not run") {
		t.Fatalf("results %+v", res)
	}
}

// TestSchemaRowLevelSecurity applies a schema through a manager whose
// applier is postgres.SchemaAdmin, on two real shards, and checks that
// every shard reports its tenant tables protected, and that a check finds
// a policy dropped on one shard.
func TestSchemaRowLevelSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := t.Context()
	pg := pgtest.ForTest(t, 2, 0)
	shards := pg.Shards()
	m, _ := newManagerWith(t, shards, nil, postgres.SchemaAdmin{})
	res, err := m.ApplySchema(ctx, `
		CREATE TABLE notes (tenant_id text, id int, PRIMARY KEY (tenant_id, id));
		CREATE TABLE plans (name text PRIMARY KEY);`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK || len(r.Tables) != 1 || r.Tables[0].Name != "notes" || !r.Tables[0].Protected() {
			t.Fatalf("apply on %s: %+v", r.Shard, r)
		}
	}
	if err := postgres.ApplySchema(ctx, shards[1].Primary.DSN, "ALTER TABLE notes NO FORCE ROW LEVEL SECURITY"); err != nil {
		t.Fatal(err)
	}
	res, err = m.CheckSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Tables[0].Protected() || res[1].Tables[0].Protected() {
		t.Fatalf("check after NO FORCE on %s: %+v", shards[1].ID, res)
	}
	if p := res[1].Tables[0].Problems(m.TenantColumn()); len(p) != 1 || !strings.Contains(p[0], "not forced") {
		t.Fatalf("problems on %s: %v", shards[1].ID, p)
	}

	// An applier that cannot check says so.
	plain, _ := newManager(t, shards, nil)
	if _, err := plain.CheckSchema(ctx); !errors.Is(err, shardmgr.ErrNoSchemaCheck) {
		t.Fatalf("check with a plain applier: %v", err)
	}
}
