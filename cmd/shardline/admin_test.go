package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
)

// adminServer serves the admin API over real etcd with shards s1..sN. Its
// schema applier fails on s2 for scripts that contain "FAIL".
func adminServer(t *testing.T, shards int) string {
	t.Helper()
	return adminServerWith(t, shards, nil)
}

// adminServerWith is adminServer with a hook to change the API's Config.
func adminServerWith(t *testing.T, shards int, change func(*api.Config)) string {
	t.Helper()
	store, err := etcdstore.NewStore(etcdtest.Start(t), "demo")
	if err != nil {
		t.Fatal(err)
	}
	var list []shardline.Shard
	for i := 1; i <= shards; i++ {
		id := fmt.Sprintf("s%d", i)
		list = append(list, shardline.Shard{
			ID:       shardline.ShardID(id),
			Primary:  shardline.Member{Name: id + "-primary", DSN: "postgres://postgres:secret@127.0.0.1:" + fmt.Sprint(5500+i) + "/app"},
			Replicas: []shardline.Member{{Name: id + "-replica1", DSN: "host=127.0.0.1 port=" + fmt.Sprint(5600+i) + " dbname=app"}},
		})
	}
	if _, err := store.Bootstrap(t.Context(), list); err != nil {
		t.Fatal(err)
	}
	apply := func(_ context.Context, dsn, sql string) error {
		if strings.Contains(sql, "FAIL") && strings.Contains(dsn, ":5502/") {
			return errors.New(`ERROR: relation "x" already exists (SQLSTATE 42P07)`)
		}
		return nil
	}
	// The shards' DSNs lead nowhere: no tenant has rows (the real check is
	// TestPinRefusesTenantWithRows's).
	noRows := func(context.Context, string, shardline.TenantID) (string, error) { return "", nil }
	mgr, err := shardmgr.New(shardmgr.Config{Store: store, Schema: shardmgr.SchemaApplierFunc(apply), Data: shardmgr.TenantDataFunc(noRows)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Manager: mgr}
	if change != nil {
		change(&cfg)
	}
	h, err := api.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

type cliRun struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in process with SHARDLINE_ADMIN set to admin.
func runCLI(t *testing.T, admin string, args ...string) cliRun {
	t.Helper()
	return runCLIEnv(t, map[string]string{"SHARDLINE_ADMIN": admin}, args...)
}

// runCLIEnv runs the CLI in process with the environment vars.
func runCLIEnv(t *testing.T, vars map[string]string, args ...string) cliRun {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &cliEnv{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }}
	code := dispatch(t.Context(), env, args)
	return cliRun{code: code, stdout: out.String(), stderr: errOut.String()}
}

func (r cliRun) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	admin := adminServer(t, 2)
	r := runCLI(t, admin, "status")
	r.want(t, 0, []string{"cluster demo", "router map revision unknown", "SHARD", "s1-primary", "s2-replica1", "2048", "host=127.0.0.1 port=5602 dbname=app"}, nil)
	if strings.Contains(r.stdout, "secret") {
		t.Errorf("status table shows a password:\n%s", r.stdout)
	}

	r = runCLI(t, admin, "status", "-o", "json")
	r.want(t, 0, nil, nil)
	var st api.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	if st.Cluster != "demo" || len(st.Shards) != 2 || st.Shards[1].Slots != 2048 || st.Shards[0].Primary.DSN == "" {
		t.Errorf("status json %+v", st)
	}
	for _, key := range []string{`"etcd_revision"`, `"map_revision"`, `"pinned_tenants"`, `"replicas"`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("status json lacks %s", key)
		}
	}

	runCLI(t, admin, "status", "-o", "yaml").want(t, 2, nil, []string{"want table or json"})
	runCLI(t, admin, "status", "extra").want(t, 2, nil, []string{"unexpected argument"})
}

func TestTenantCommands(t *testing.T) {
	admin := adminServer(t, 2)
	runCLI(t, admin, "tenant", "list").want(t, 0, []string{"no registered tenants"}, nil)

	// Flags after the name.
	runCLI(t, admin, "tenant", "create", "acme", "--shard", "s2").
		want(t, 0, []string{"TENANT", "acme", "s2", fmt.Sprint(shardline.SlotOf("acme")), "yes"}, nil)

	r := runCLI(t, admin, "tenant", "create", "-o", "json", "beta")
	r.want(t, 0, nil, nil)
	var v api.TenantView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Tenant != "beta" || !v.Registered || v.Pinned {
		t.Errorf("create -o json = %+v, %v\n%s", v, err, r.stdout)
	}

	r = runCLI(t, admin, "tenant", "show", "ghost", "-o", "json")
	r.want(t, 0, nil, nil)
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Registered || v.Slot != shardline.SlotOf("ghost") || v.Shard == "" {
		t.Errorf("show unknown = %+v, %v", v, err)
	}

	runCLI(t, admin, "tenant", "pin", "beta", "--shard", "s1").want(t, 0, []string{"beta", "s1"}, nil)
	runCLI(t, admin, "tenant", "unpin", "beta").want(t, 0, []string{"beta"}, nil)

	r = runCLI(t, admin, "tenant", "list", "-o", "json")
	r.want(t, 0, nil, nil)
	var l api.TenantList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Tenants) != 2 || l.Tenants[0].Tenant != "acme" || !l.Tenants[0].Pinned || l.Tenants[1].Pinned {
		t.Errorf("list -o json = %+v, %v", l, err)
	}
	runCLI(t, admin, "tenant", "list").want(t, 0, []string{"acme", "beta"}, nil)

	runCLI(t, admin, "tenant", "create", "a'b").want(t, 1, nil, []string{"shardline tenant:", "invalid tenant"})
	runCLI(t, admin, "tenant", "create", "x", "--shard", "s9").want(t, 1, nil, []string{`no shard "s9" in this cluster`})
	runCLI(t, admin, "tenant", "unpin", "nobody").want(t, 1, nil, []string{`tenant "nobody" is not registered`})
	runCLI(t, admin, "tenant").want(t, 2, nil, []string{"missing subcommand"})
	runCLI(t, admin, "tenant", "drop", "x").want(t, 2, nil, []string{"unknown subcommand"})
	runCLI(t, admin, "tenant", "show").want(t, 2, nil, []string{"one tenant NAME"})
	runCLI(t, admin, "tenant", "show", "a", "b").want(t, 2, nil, []string{"one tenant NAME"})
	runCLI(t, admin, "tenant", "show", "a", "--nope").want(t, 2, nil, []string{"flag provided but not defined"})
	runCLI(t, admin, "tenant", "list", "-h").want(t, 0, nil, []string{"usage:"})
	// "--" ends the flags: a tenant id may start with a dash.
	runCLI(t, admin, "tenant", "show", "--", "-dash").want(t, 0, []string{"-dash"}, nil)
}

// TestCLIErrorsAreOneSentence checks what a user reads when a tenant
// command is refused: the command, one sentence naming the problem, and a
// hint; no package prefixes or internal step names.
func TestCLIErrorsAreOneSentence(t *testing.T) {
	admin := adminServer(t, 2)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tenant", "show", "x y"}, `shardline tenant: invalid tenant id "x y": byte ' ' at offset 1 is not allowed (hint: ` + shardline.TenantRule + ")\n"},
		{[]string{"tenant", "show", "--", ""}, `shardline tenant: invalid tenant id "": it is empty (hint: ` + shardline.TenantRule + ")\n"},
		{[]string{"tenant", "create", "acme", "--shard", "S9"}, `shardline tenant: invalid shard id "S9": a shard id is 1 to 63 bytes of a-z, 0-9, '-' and '_' (hint: 'shardline status' lists the shards)` + "\n"},
		{[]string{"tenant", "pin", "acme", "--shard", "s9"}, `shardline tenant: no shard "s9" in this cluster (hint: 'shardline status' lists the shards)` + "\n"},
	} {
		r := runCLI(t, admin, tc.args...)
		if r.code != 1 || r.stderr != tc.want {
			t.Errorf("%q: exit %d, stderr\n%s\nwant exit 1 and\n%s", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestSchemaApply(t *testing.T) {
	admin := adminServer(t, 3)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.sql")
	bad := filepath.Join(dir, "bad.sql")
	os.WriteFile(good, []byte("CREATE TABLE t (tenant_id text, id int, PRIMARY KEY (tenant_id, id));"), 0o644)
	os.WriteFile(bad, []byte("CREATE TABLE x (tenant_id text); -- FAIL"), 0o644)

	runCLI(t, admin, "schema", "apply", good).want(t, 0, []string{"s1  OK", "s2  OK", "s3  OK"}, nil)

	r := runCLI(t, admin, "schema", "apply", bad)
	r.want(t, 1, []string{"s1  OK", "s2  FAILED   ERROR: relation", "s3  NOT RUN"},
		[]string{"shardline schema: schema change failed on s2; not run on s3; applied on s1\n"})
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("stderr has %d lines:\n%s", n, r.stderr)
	}

	r = runCLI(t, admin, "schema", "apply", "-o", "json", bad)
	r.want(t, 1, nil, []string{"applied on s1"})
	var resp api.SchemaResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || len(resp.Results) != 3 || !resp.Results[0].OK || resp.Results[1].OK {
		t.Errorf("schema apply -o json = %+v, %v\n%s", resp, err, r.stdout)
	}

	empty := filepath.Join(dir, "empty.sql")
	os.WriteFile(empty, nil, 0o644)
	runCLI(t, admin, "schema", "apply", empty).want(t, 1, nil, []string{"empty"})
	runCLI(t, admin, "schema", "apply", filepath.Join(dir, "missing.sql")).want(t, 1, nil, []string{"read schema"})
	runCLI(t, admin, "schema", "apply").want(t, 2, nil, []string{"one FILE"})
	runCLI(t, admin, "schema").want(t, 2, nil, []string{"missing subcommand"})
	runCLI(t, admin, "schema", "drop").want(t, 2, nil, []string{"unknown subcommand"})
}

func TestAdminUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	want := "cannot reach the admin API at http://" + addr + ": start the cluster with 'shardline up' or set --admin/SHARDLINE_ADMIN\n"
	for _, args := range [][]string{
		{"status"},
		{"tenant", "show", "acme"},
		{"tenant", "list"},
		{"schema", "apply", "admin_test.go"},
	} {
		// The flag wins over the environment; a bare host:port is accepted.
		r := runCLI(t, "http://127.0.0.1:1", append(args, "--admin", addr)...)
		r.want(t, 1, nil, []string{want})
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: stderr is not one line:\n%s", args, r.stderr)
		}
	}
	// The environment is used without the flag.
	runCLI(t, "http://"+addr+"/", "status").want(t, 1, nil, []string{want})
}

func TestAdminURL(t *testing.T) {
	for _, tc := range []struct{ flag, env, want string }{
		{"", "", defaultAdminURL},
		{"", "http://h:1/", "http://h:1"},
		{"h:2", "http://h:1", "http://h:2"},
		{"https://h:3", "", "https://h:3"},
	} {
		a := adminFlags{admin: tc.flag}
		env := &cliEnv{Getenv: func(string) string { return tc.env }}
		if got := a.url(env); got != tc.want {
			t.Errorf("flag %q env %q: %s, want %s", tc.flag, tc.env, got, tc.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db":              "postgres://u:xxxxx@h:5432/db",
		"postgres://u@h:5432/db?sslmode=disable": "postgres://u@h:5432/db?sslmode=disable",
		"host=h password=pw dbname=db":           "host=h password=xxxxx dbname=db",
		"host=h password='p w' dbname=db":        "host=h password=xxxxx dbname=db",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
