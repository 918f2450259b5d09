package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

const tenantSchemaSQL = `
CREATE TABLE accounts (tenant_id text, id int, note text, PRIMARY KEY (tenant_id, id));
CREATE TABLE by_id (tenant_id text NOT NULL, id int PRIMARY KEY);
CREATE TABLE no_key (tenant_id text);
CREATE TABLE countries (code text PRIMARY KEY);
CREATE TABLE audit (tenant_id text, at timestamptz, PRIMARY KEY (tenant_id, at));
INSERT INTO shardline.rls_opt_out VALUES ('public', 'audit', 'read across tenants by the billing job');
CREATE TABLE events (tenant_id text, at date, PRIMARY KEY (tenant_id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE ROLE app LOGIN NOSUPERUSER NOBYPASSRLS;
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, events, events_2026, audit TO app;
GRANT USAGE ON SCHEMA shardline TO app;
GRANT EXECUTE ON FUNCTION shardline.enter(text, text) TO app;
INSERT INTO accounts VALUES ('acme', 1, 'a'), ('acme', 2, 'a'), ('hooli', 1, 'h');
INSERT INTO events VALUES ('acme', '2026-03-01'), ('hooli', '2026-04-01');
INSERT INTO audit VALUES ('acme', now()), ('hooli', now());`

// TestApplyTenantSchema applies a schema with tenant tables of every kind
// and checks what the catalog then says of each, and that re-applying
// changes nothing and repairs a dropped policy.
func TestApplyTenantSchema(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN
	tables, err := postgres.ApplyTenantSchema(ctx, dsn, tenantSchemaSQL, postgres.DefaultTenantColumn)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]postgres.TenantTableInfo{}
	var names []string
	for _, tt := range tables {
		byName[tt.Name] = tt
		names = append(names, tt.Name)
	}
	if want := []string{"accounts", "audit", "by_id", "events", "events_2026", "no_key"}; !slices.Equal(names, want) {
		t.Fatalf("tenant tables %v, want %v (countries has no tenant column)", names, want)
	}
	for _, n := range []string{"accounts", "by_id", "no_key", "events", "events_2026"} {
		if !byName[n].Protected() {
			t.Errorf("%s not protected after apply: %+v", n, byName[n])
		}
	}
	if a := byName["audit"]; a.Protected() || a.OptOut != "read across tenants by the billing job" {
		t.Errorf("audit opted out, got %+v", a)
	}
	if !byName["events_2026"].Partition {
		t.Error("events_2026 not seen as a partition")
	}
	col := postgres.DefaultTenantColumn
	if p := byName["accounts"].Problems(col); p != nil {
		t.Errorf("accounts has problems %v", p)
	}
	if p := byName["by_id"].Problems(col); len(p) != 1 || !strings.Contains(p[0], "does not lead") {
		t.Errorf("by_id problems %v, want its primary key", p)
	}
	if p := byName["no_key"].Problems(col); len(p) != 1 || !strings.Contains(p[0], "no primary key") {
		t.Errorf("no_key problems %v, want no primary key", p)
	}

	// A policy dropped by hand is seen, and the next apply restores it.
	if err := postgres.ApplySchema(ctx, dsn, "DROP POLICY shardline_tenant ON accounts"); err != nil {
		t.Fatal(err)
	}
	checked, err := postgres.CheckTenantSchema(ctx, dsn, col)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range checked {
		if tt.Name == "accounts" && (tt.Policy || len(tt.Problems(col)) != 1) {
			t.Fatalf("dropped policy not seen: %+v %v", tt, tt.Problems(col))
		}
	}
	again, err := postgres.ApplyTenantSchema(ctx, dsn, "", col)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range again {
		if tt.OptOut == "" && !tt.Protected() {
			t.Fatalf("%s not protected after a second apply: %+v", tt.Name, tt)
		}
	}
}

// TestTenantPoliciesEnforce connects as a role that is neither superuser
// nor BYPASSRLS and checks what the policies let it see and write.
func TestTenantPoliciesEnforce(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN
	if _, err := postgres.ApplyTenantSchema(ctx, dsn, tenantSchemaSQL+`
		CREATE POLICY wide_open ON accounts USING (true) WITH CHECK (true);
		ALTER TABLE events_2026 OWNER TO app;`, postgres.DefaultTenantColumn); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = "app"
	app, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	count := func(q string) int {
		t.Helper()
		var n int
		if err := app.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count("SELECT count(*) FROM accounts"); n != 0 {
		t.Fatalf("without a binding the session sees %d rows, want 0", n)
	}
	if _, err := app.Exec(ctx, "SELECT shardline.enter('acme', $1)", l.BindingToken()); err != nil {
		t.Fatal(err)
	}
	// A permissive policy of the user's does not widen the restrictive one.
	if n := count("SELECT count(*) FROM accounts"); n != 2 {
		t.Fatalf("acme sees %d account rows, want its 2", n)
	}
	// The partition, named directly and owned by the session's role.
	if n := count("SELECT count(*) FROM events_2026"); n != 1 {
		t.Fatalf("acme sees %d rows of the partition, want its 1", n)
	}
	// The opted-out table is read across tenants.
	if n := count("SELECT count(*) FROM audit"); n != 2 {
		t.Fatalf("opted-out audit shows %d rows, want both tenants'", n)
	}
	_, err = app.Exec(ctx, "INSERT INTO accounts VALUES ('hooli', 9, 'x')")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("insert of another tenant's row: %v, want 42501", err)
	}
	tag, err := app.Exec(ctx, "UPDATE accounts SET note = 'y' WHERE tenant_id = 'hooli'")
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("update of another tenant's rows: %v, %d rows", err, tag.RowsAffected())
	}
	if _, err := app.Exec(ctx, "UPDATE accounts SET tenant_id = 'hooli' WHERE id = 1"); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("moving a row to another tenant: %v, want 42501", err)
	}
	if _, err := app.Exec(ctx, "INSERT INTO accounts VALUES ('acme', 3, 'ok')"); err != nil {
		t.Fatalf("insert of the tenant's own row: %v", err)
	}
}

// TestApplyTakesTablesFromTheAppRole: a tenant table the router's role
// owns (made through the router) is a problem for check, since its owner
// can disable row-level security; apply gives it to the admin and leaves
// the app role its rows' privileges.
func TestApplyTakesTablesFromTheAppRole(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN
	app := connectAs(ctx, t, dsn, postgres.AppRole)
	if _, err := app.Exec(ctx, "CREATE TABLE made_by_app (tenant_id text, id int, PRIMARY KEY (tenant_id, id))"); err != nil {
		t.Fatal(err)
	}
	tables, err := postgres.CheckTenantSchema(ctx, dsn, postgres.DefaultTenantColumn)
	if err != nil || len(tables) != 1 || tables[0].Owner != postgres.AppRole {
		t.Fatalf("check: %+v, %v", tables, err)
	}
	if p := strings.Join(tables[0].Problems(postgres.DefaultTenantColumn), "; "); !strings.Contains(p, "owned by "+postgres.AppRole) {
		t.Fatalf("problems %q do not name the owner", p)
	}
	tables, err = postgres.ApplyTenantSchema(ctx, dsn, "", postgres.DefaultTenantColumn)
	if err != nil || len(tables) != 1 || tables[0].Owner != "postgres" || len(tables[0].Problems(postgres.DefaultTenantColumn)) != 0 {
		t.Fatalf("after apply: %+v, %v", tables, err)
	}
	if _, err := app.Exec(ctx, "ALTER TABLE made_by_app DISABLE ROW LEVEL SECURITY"); !isCode(err, "42501") {
		t.Fatalf("the app role disabling RLS after apply: %v, want 42501", err)
	}
	if _, err := app.Exec(ctx, "TRUNCATE made_by_app"); !isCode(err, "42501") {
		t.Fatalf("the app role truncating after apply: %v, want 42501", err)
	}
	if _, err := app.Exec(ctx, "SELECT shardline.enter('acme', $1)", l.BindingToken()); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, "INSERT INTO made_by_app VALUES ('acme', 1)"); err != nil {
		t.Fatalf("the app role writing its tenant's row after apply: %v", err)
	}
}

// TestApplyDisarmsDefinerObjects: a view and a SECURITY DEFINER function
// made by the admin (a superuser, which row-level security does not bind)
// would read every tenant's rows for any session; after apply the view
// reads with the session's rights and the function is not the app role's.
func TestApplyDisarmsDefinerObjects(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN
	if _, err := postgres.ApplyTenantSchema(ctx, dsn, `
		CREATE TABLE notes (tenant_id text, id int, PRIMARY KEY (tenant_id, id));
		INSERT INTO notes VALUES ('acme', 1), ('hooli', 1);
		CREATE VIEW all_notes AS SELECT * FROM notes;
		CREATE MATERIALIZED VIEW notes_mat AS SELECT * FROM notes;
		CREATE FUNCTION count_notes() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM notes';
		GRANT SELECT ON all_notes, notes_mat TO shardline_app;`, postgres.DefaultTenantColumn); err != nil {
		t.Fatal(err)
	}
	app := connectAs(ctx, t, dsn, postgres.AppRole)
	if _, err := app.Exec(ctx, "SELECT shardline.enter('acme', $1)", l.BindingToken()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := app.QueryRow(ctx, "SELECT count(*) FROM all_notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("acme reads %d rows through the admin's view (%v), want its 1", n, err)
	}
	for _, q := range []string{"SELECT count(*) FROM notes_mat", "SELECT count_notes()"} {
		if _, err := app.Exec(ctx, q); !isCode(err, "42501") {
			t.Errorf("%s as the app role: %v, want 42501", q, err)
		}
	}
}
