package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// withAppPassword is dsn with the password in file (a 'shardline up'
// cluster's app.password).
func withAppPassword(t *testing.T, dsn, file string) string {
	t.Helper()
	pw, err := readPasswordFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

// runCLIStdin runs the CLI in process against admin with stdin.
func runCLIStdin(t *testing.T, admin, stdin string, args ...string) cliRun {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &cliEnv{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return map[string]string{"SHARDLINE_ADMIN": admin}[k] }}
	code := dispatch(t.Context(), env, args)
	return cliRun{code: code, stdout: out.String(), stderr: errOut.String()}
}

// waitUser waits until the router's users satisfy cond.
func waitUser(t *testing.T, users *etcdstore.UserWatcher, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for rev := users.Revision(); !cond(); rev++ {
		if err := users.WaitRevision(ctx, rev+1); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

// TestUserCommands: up makes an app user whose connection string works as
// printed; users added, changed and removed with the CLI take effect at
// the router without a restart; a restart keeps the app user's password.
func TestUserCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	info, stop := startUp(t, dir, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fi, err := os.Stat(info.AppPasswordFile)
	if err != nil || fi.Mode().Perm() != 0o600 || info.AppPasswordFile != filepath.Join(dir, appPasswordName) {
		t.Fatalf("app password file %s: %v, mode %v", info.AppPasswordFile, err, fi.Mode())
	}
	conn, err := pgx.Connect(ctx, info.RouterDSN)
	if err != nil {
		t.Fatalf("up's connection string: %v", err)
	}
	conn.Close(ctx)
	router, _ := strings.CutPrefix(strings.SplitN(info.RouterDSN, "@", 2)[1], "")
	dsn := func(user, pw, opts string) string {
		return "postgres://" + url.UserPassword(user, pw).String() + "@" + strings.SplitN(router, "/", 2)[0] + "/app?sslmode=disable" + opts
	}
	login := func(user, pw, opts string) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn(user, pw, opts)) }

	r := runCLIStdin(t, info.AdminURL, "first pw\n", "user", "add", "acme_app", "--tenant", "acme", "--password-stdin")
	r.want(t, 0, []string{"added user acme_app", "acme_app  app   acme"}, nil)
	waitUser(t, info.Users, "acme_app", func() bool { _, ok := info.Users.Lookup("acme_app"); return ok })
	c, err := login("acme_app", "first pw", "")
	if err != nil {
		t.Fatal(err)
	}
	var tenant string
	if err := c.QueryRow(ctx, "SHOW shardline.tenant").Scan(&tenant); err != nil || tenant != "acme" {
		t.Fatalf("acme_app's tenant = %q, %v", tenant, err)
	}
	_, err = c.Exec(ctx, "SET shardline.tenant = 'hooli'")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("acme_app naming hooli: %v", err)
	}
	c.Close(ctx)

	runCLIStdin(t, info.AdminURL, "x\n", "user", "add", "acme_app", "--password-stdin").want(t, 1, nil, []string{`user "acme_app" exists`, "shardline user passwd"})
	runCLIStdin(t, info.AdminURL, "x\n", "user", "add", "9lives", "--password-stdin").want(t, 2, nil, []string{"invalid user name"})
	runCLIStdin(t, info.AdminURL, "x\n", "user", "add", "ops", "--kind", "admin", "--tenant", "acme", "--password-stdin").want(t, 2, nil, []string{"bound to none"})
	runCLIStdin(t, info.AdminURL, "", "user", "add", "nopw").want(t, 2, nil, []string{"--password-file FILE or --password-stdin"})
	runCLIStdin(t, info.AdminURL, "\n", "user", "add", "nopw", "--password-stdin").want(t, 1, nil, []string{"invalid password: it is empty"})
	runCLIStdin(t, info.AdminURL, "x\n", "user", "add", "ops", "--kind", "admin", "--password-stdin").want(t, 0, []string{"ops   admin  any"}, nil)

	r = runCLIStdin(t, info.AdminURL, "", "user", "list", "-o", "json")
	r.want(t, 0, nil, nil)
	var list api.UserList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Users) != 3 || list.Users[0].Name != "acme_app" || list.Users[0].Tenants[0] != "acme" || list.Users[1].Name != "app" || list.Users[2].Kind != "admin" {
		t.Fatalf("user list -o json: %+v", list)
	}
	if strings.Contains(r.stdout, "SCRAM") || strings.Contains(r.stdout, "verifier") {
		t.Fatalf("user list shows verifiers: %s", r.stdout)
	}

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("second pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := info.Users.Lookup("acme_app")
	runCLIStdin(t, info.AdminURL, "", "user", "passwd", "acme_app", "--password-file", pwFile).want(t, 0, []string{"changed the password of user acme_app"}, nil)
	waitUser(t, info.Users, "the new password", func() bool { u, _ := info.Users.Lookup("acme_app"); return u.Verifier != before.Verifier })
	if _, err := login("acme_app", "first pw", ""); err == nil {
		t.Fatal("the old password still logs in")
	}
	c, err = login("acme_app", "second pw", "")
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	runCLIStdin(t, info.AdminURL, "", "user", "passwd", "ghost", "--password-file", pwFile).want(t, 1, nil, []string{`no user "ghost"`})

	runCLIStdin(t, info.AdminURL, "", "user", "remove", "acme_app").want(t, 0, []string{"removed user acme_app"}, nil)
	waitUser(t, info.Users, "the removal", func() bool { _, ok := info.Users.Lookup("acme_app"); return !ok })
	if _, err := login("acme_app", "second pw", ""); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Fatalf("a removed user: %v, want 28P01", err)
	}
	runCLIStdin(t, info.AdminURL, "", "user", "remove", "acme_app").want(t, 1, nil, []string{`no user "acme_app"`})

	// A restart keeps the app user and its password.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	again, _ := startUp(t, dir, 1, 0)
	if withAppPassword(t, again.RouterDSN, again.AppPasswordFile) != again.RouterDSN || !strings.Contains(again.RouterDSN, strings.SplitN(strings.TrimPrefix(info.RouterDSN, "postgres://"), "@", 2)[0]) {
		t.Fatalf("after a restart the DSN is %q, was %q", again.RouterDSN, info.RouterDSN)
	}
	conn, err = pgx.Connect(ctx, again.RouterDSN)
	if err != nil {
		t.Fatalf("up's connection string after a restart: %v", err)
	}
	conn.Close(ctx)
}

// --auth trust is refused on a listener that is not loopback, before
// anything starts.
func TestTrustNeedsLoopback(t *testing.T) {
	c := &upCommand{Dir: t.TempDir(), Shards: 1, Listen: "0.0.0.0:0", Admin: freeAddr(t), Metrics: freeAddr(t),
		routerFlags: routerFlags{Database: "app", PoolSize: 8, Auth: "trust"}, Stdout: &bytes.Buffer{}}
	err := c.Run(t.Context())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "only a loopback --listen") {
		t.Fatalf("up --auth trust --listen 0.0.0.0:0 = %v", err)
	}
	r := runCLIEnv(t, nil, "router", "--auth", "md5")
	r.want(t, 2, nil, []string{"--auth", "unknown authentication method"})
}
