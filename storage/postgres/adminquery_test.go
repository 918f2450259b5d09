package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestAdminQuery: an operator's query reads every tenant's rows, read-only
// unless asked: a write, or a COMMIT meant to escape the transaction, fails
// and changes nothing; with write it commits.
func TestAdminQuery(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN
	if _, err := postgres.ApplyTenantSchema(ctx, dsn, `
		CREATE TABLE notes (tenant_id text, id int, body text, PRIMARY KEY (tenant_id, id));
		INSERT INTO notes VALUES ('acme', 1, 'a'), ('hooli', 1, NULL);`, postgres.DefaultTenantColumn); err != nil {
		t.Fatal(err)
	}
	res, err := postgres.AdminQuery(ctx, dsn, "SELECT tenant_id, body FROM notes ORDER BY tenant_id", false, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Columns) != 2 || len(res.Rows) != 1 || *res.Rows[0][0] != "acme" || !res.Truncated || res.Tag != "SELECT 2" {
		t.Fatalf("read across tenants: %+v", res)
	}
	for _, q := range []string{"DELETE FROM notes", "COMMIT; DELETE FROM notes"} {
		if _, err := postgres.AdminQuery(ctx, dsn, q, false, 10); err == nil {
			t.Fatalf("%s ran read-only", q)
		}
	}
	res, err = postgres.AdminQuery(ctx, dsn, "SELECT count(*) FROM notes", false, 10)
	if err != nil || *res.Rows[0][0] != "2" {
		t.Fatalf("rows after refused writes: %+v, %v", res, err)
	}
	if _, err := postgres.AdminQuery(ctx, dsn, "DELETE FROM notes WHERE tenant_id = 'hooli'", true, 10); err != nil {
		t.Fatal(err)
	}
	res, err = postgres.AdminQuery(ctx, dsn, "SELECT count(*), bool_or(body IS NULL) FROM notes", false, 10)
	if err != nil || *res.Rows[0][0] != "1" || *res.Rows[0][1] != "f" {
		t.Fatalf("rows after a write: %+v, %v", res, err)
	}
}
