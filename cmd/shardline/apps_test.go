package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// appsSchema is the tenant table the applications share; 'schema apply'
// puts row-level security on it.
const appsSchema = `CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id));`

// appNote is one row as the applications print it.
type appNote struct {
	Tenant string `json:"tenant"`
	ID     int    `json:"id"`
	Body   string `json:"body"`
}

// forgeResult is an application's attempt to step out of its tenant.
type forgeResult struct {
	Code  string `json:"code"` // "" when it succeeded
	Error string `json:"error"`
}

// TestApps runs real applications through the router of an up cluster
// (SCRAM, the app user, row-level security by 'schema apply', the guard
// binding): Flask + SQLAlchemy with a pool of two connections binding a
// tenant per request, the same through a standalone router with --auth
// trust, and node-postgres binding by startup option and by SET. Every
// request must see exactly its tenant's rows and forging fails 42501.
// Each part skips without its runtime.
func TestApps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	py, pyMissing := debianPython("flask", "sqlalchemy", "psycopg2")
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if py == "" && (nodeErr != nil || npmErr != nil) {
		t.Skipf("no application runtime: %s; and node and npm are not installed (Debian: apt-get install nodejs npm)", pyMissing)
	}
	dir := pgtest.Dir(t)
	var etcd string
	up, _ := startUpWith(t, dir, 2, 0, func(c *upCommand) { etcd = c.Etcd })
	file := filepath.Join(t.TempDir(), "schema.sql")
	if err := os.WriteFile(file, []byte(appsSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	runCLI(t, up.AdminURL, "schema", "apply", file).want(t, 0, []string{"s1  OK", "s2  OK"}, nil)

	t.Run("flask-sqlalchemy", func(t *testing.T) {
		if py == "" {
			t.Skip(pyMissing)
		}
		checkFlask(t, py, up.RouterDSN, "flask-a", "flask-b")
	})
	t.Run("flask-sqlalchemy-trust", func(t *testing.T) {
		if py == "" {
			t.Skip(pyMissing)
		}
		r := startTrustRouter(t, []string{etcd}, filepath.Join(dir, "pg", "binding.token"))
		if strings.Contains(r.RouterDSN, ":@") || strings.Count(r.RouterDSN, ":") != 2 {
			t.Fatalf("the trust router's DSN %q should carry no password", r.RouterDSN)
		}
		checkFlask(t, py, r.RouterDSN, "trust-a", "trust-b")
	})
	t.Run("node-postgres", func(t *testing.T) {
		if nodeErr != nil || npmErr != nil {
			t.Skip("node and npm are not installed (Debian: apt-get install nodejs npm)")
		}
		checkNodePG(t, node, npm, up.RouterDSN, "node-opt", "node-set")
	})
}

// debianPython finds a python3 that imports modules: Debian's first,
// since another python3 on PATH (pyenv) may lack the Debian packages.
// Without one it returns "" and a skip message naming the packages.
func debianPython(modules ...string) (string, string) {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if p, err := exec.LookPath(p); err == nil && exec.Command(p, "-c", "import "+strings.Join(modules, ", ")).Run() == nil {
			return p, ""
		}
	}
	return "", "python3 with Flask, SQLAlchemy and psycopg2 is not installed (Debian: apt-get install python3-flask python3-sqlalchemy python3-psycopg2)"
}

// startTrustRouter runs `shardline router --auth trust` in process on a
// loopback listener against etcd.
func startTrustRouter(t *testing.T, etcd []string, tokenFile string) routerInfo {
	t.Helper()
	c := &routerCommand{
		Listen: freeAddr(t), Metrics: freeAddr(t), Etcd: etcd,
		routerFlags:      routerFlags{Database: "app", PoolSize: 4, Auth: "trust"},
		BindingTokenFile: tokenFile, Stdout: &bytes.Buffer{}, Logger: pgtest.Logger(t),
	}
	info, _ := runUntilReady(t, "router --auth trust", time.Minute, &c.OnReady, c.Run)
	return info
}

// runApp runs an application script and decodes the JSON it prints.
func runApp(t *testing.T, out any, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), filepath.Base(args[0]), err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("%s printed no JSON: %v\n%s\n%s", filepath.Base(args[0]), err, stdout, stderr.String())
	}
}

// checkNotes fails unless notes are exactly tenant's rows 0..n-1.
func checkNotes(t *testing.T, what, tenant string, notes []appNote, n int) {
	t.Helper()
	if len(notes) != n {
		t.Errorf("%s: %d rows, want %d: %+v", what, len(notes), n, notes)
		return
	}
	for i, note := range notes {
		if want := (appNote{tenant, i, fmt.Sprintf("%s %d", tenant, i)}); note != want {
			t.Errorf("%s: row %d is %+v, want %+v", what, i, note, want)
			return
		}
	}
}

// checkFlask runs testdata/apps/flask_app.py against dsn: tenants a and b
// interleaved for 50 rounds over a pool of two connections.
func checkFlask(t *testing.T, py, dsn, a, b string) {
	const rounds = 50
	var got struct {
		Requests []struct {
			Tenant string    `json:"tenant"`
			Round  int       `json:"round"`
			Notes  []appNote `json:"notes"`
		} `json:"requests"`
		Forge       forgeResult `json:"forge"`
		PoolSize    int         `json:"pool_size"`
		Connections int         `json:"connections"`
		Alternated  bool        `json:"alternated"`
	}
	runApp(t, &got, nil, py, "testdata/apps/flask_app.py", dsn, a, b, fmt.Sprint(rounds))
	if got.PoolSize != 2 || got.Connections != 2 || !got.Alternated || len(got.Requests) != 2*rounds {
		t.Fatalf("pool of %d, %d connections used (alternating: %v), %d listing requests; want 2, 2 (true) and %d",
			got.PoolSize, got.Connections, got.Alternated, len(got.Requests), 2*rounds)
	}
	for i, r := range got.Requests {
		if want := []string{a, b}[i%2]; r.Tenant != want || r.Round != i/2 {
			t.Fatalf("request %d is %s round %d, want %s round %d", i, r.Tenant, r.Round, want, i/2)
		}
		checkNotes(t, fmt.Sprintf("GET /notes for %s in round %d", r.Tenant, r.Round), r.Tenant, r.Notes, r.Round+1)
	}
	t.Logf("%d requests over a pool of %d; the forged row: %+v", len(got.Requests), got.PoolSize, got.Forge)
	if got.Forge.Code != "42501" {
		t.Errorf("a row for %s written by %s's request: %+v, want SQLSTATE 42501", b, a, got.Forge)
	}
}

// checkNodePG installs node-postgres (pg@8) from the npm registry into a
// temporary directory and runs testdata/apps/node_pg.js against dsn.
func checkNodePG(t *testing.T, node, npm, dsn, byOption, bySet string) {
	const rows = 20
	mods := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, npm, "install", "--prefix", mods, "--no-audit", "--no-fund", "--no-save", "--silent", "pg@8").CombinedOutput(); err != nil {
		t.Skipf("npm install pg@8 failed (it needs the npm registry): %v %s", err, bytes.TrimSpace(out))
	}
	var got map[string]json.RawMessage
	runApp(t, &got, []string{"NODE_PATH=" + filepath.Join(mods, "node_modules")}, node, "testdata/apps/node_pg.js", dsn, byOption, bySet, fmt.Sprint(rows))
	for _, tenant := range []string{byOption, bySet} {
		var notes []appNote
		if err := json.Unmarshal(got[tenant], &notes); err != nil {
			t.Fatalf("rows of %s: %v in %s", tenant, err, got[tenant])
		}
		checkNotes(t, "pool bound to "+tenant, tenant, notes, rows)
	}
	var forge forgeResult
	var after struct {
		Tenant string `json:"tenant"`
		Count  int    `json:"count"`
	}
	if err := json.Unmarshal(got["forge"], &forge); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got["after_forge"], &after); err != nil {
		t.Fatal(err)
	}
	t.Logf("set_config forged: %+v; after it: %+v", forge, after)
	if forge.Code != "42501" {
		t.Errorf("set_config('shard'||'line.tenant', ...) from %s: %+v, want SQLSTATE 42501", byOption, forge)
	}
	if after.Tenant != byOption || after.Count != rows {
		t.Errorf("after the forge the connection is bound to %q and sees %d rows, want %q and %d", after.Tenant, after.Count, byOption, rows)
	}
}
