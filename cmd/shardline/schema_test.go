package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestSchemaApplyAndCheck runs 'schema apply' and 'schema check' against a
// real cluster: apply puts row-level security on the tenant table, check
// passes, and a table created through the router afterwards (without
// row-level security, its key not led by tenant_id) makes check fail and
// name it.
func TestSchemaApplyAndCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	info, _ := startUp(t, dir, 1, 0)
	file := filepath.Join(t.TempDir(), "schema.sql")
	if err := os.WriteFile(file, []byte(`CREATE TABLE notes (tenant_id text, id int, PRIMARY KEY (tenant_id, id));
		CREATE TABLE plans (name text PRIMARY KEY);`), 0o644); err != nil {
		t.Fatal(err)
	}
	runCLI(t, info.AdminURL, "schema", "apply", file).want(t, 0, []string{"s1  OK"}, nil)
	runCLI(t, info.AdminURL, "schema", "check").want(t, 0, []string{`s1     "public"."notes"  forced  yes     tenant_id first  ok`}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, info.RouterDSN+"&options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE events (tenant_id text, id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, info.AdminURL, "schema", "check")
	r.want(t, 1, []string{`"public"."events"  no`, "row-level security is not enabled", "does not lead with tenant_id"},
		[]string{"problems with tenant tables"})
	r = runCLI(t, info.AdminURL, "schema", "check", "-o", "json")
	var rep api.SchemaCheckResponse
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 || len(rep.Results) != 1 || len(rep.Results[0].Tables) != 2 {
		t.Fatalf("schema check -o json: exit %d, %+v, %v\n%s", r.code, rep, err, r.stdout)
	}
	runCLI(t, info.AdminURL, "schema", "check", "extra").want(t, 2, nil, []string{"no arguments"})
}
