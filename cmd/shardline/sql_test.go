package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestSQLCommand: an operator reads across tenants with `shardline sql`,
// read-only unless --write.
func TestSQLCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUp(t, pgtest.Dir(t), 1, 0)
	file := filepath.Join(t.TempDir(), "schema.sql")
	if err := os.WriteFile(file, []byte(`CREATE TABLE notes (tenant_id text, id int, body text, PRIMARY KEY (tenant_id, id));`), 0o644); err != nil {
		t.Fatal(err)
	}
	runCLI(t, info.AdminURL, "schema", "apply", file).want(t, 0, []string{"s1  OK"}, nil)
	runCLI(t, info.AdminURL, "sql", "--shard", "s1", "--write", "INSERT INTO notes VALUES ('acme', 1, 'a'), ('hooli', 1, NULL)").
		want(t, 0, []string{"(INSERT 0 2)"}, nil)
	runCLI(t, info.AdminURL, "sql", "--shard", "s1", "SELECT tenant_id, body FROM notes ORDER BY tenant_id").
		want(t, 0, []string{"TENANT_ID  BODY", "acme       a", "hooli      NULL", "(SELECT 2)"}, nil)
	runCLI(t, info.AdminURL, "sql", "--shard", "s1", "DELETE FROM notes").
		want(t, 1, nil, []string{"read-only transaction", "25006"})
	runCLI(t, info.AdminURL, "sql", "--shard", "s1", "-o", "json", "SELECT count(*) AS n FROM notes").
		want(t, 0, []string{`"columns": [`, `"n"`, `"2"`}, nil)
	runCLI(t, info.AdminURL, "sql", "--shard", "s9", "SELECT 1").want(t, 1, nil, []string{`no shard "s9"`})
	runCLI(t, info.AdminURL, "sql", "SELECT 1").want(t, 2, nil, []string{"--shard is required"})
}
