package postgres_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestGuardBinding connects as the app role and tries every way of writing
// the binding that client SQL has: only shardline.enter() with the token
// binds a tenant.
func TestGuardBinding(t *testing.T) {
	l := pgtest.ForTest(t, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	token := l.BindingToken()
	if len(token) < 32 {
		t.Fatalf("binding token %q is too short", token)
	}
	for _, sh := range l.Shards() {
		for _, dsn := range append([]string{sh.Primary.DSN}, sh.Replicas[0].DSN) {
			app := connectAs(ctx, t, dsn, postgres.AppRole)
			binding := func() string {
				t.Helper()
				var v string
				if err := app.QueryRow(ctx, "SELECT coalesce(shardline.current_tenant(), '')").Scan(&v); err != nil {
					t.Fatal(err)
				}
				return v
			}
			for _, q := range []string{
				"SET shardline.tenant = 'hooli'",
				"SET LOCAL shardline.tenant = 'hooli'",
				"SELECT set_config('shardline.tenant', 'hooli', false)",
				"SELECT set_config('shard' || 'line.tenant', 'hooli', false)",
				"DO $$ BEGIN PERFORM set_config('shardline.tenant', 'hooli', false); END $$",
				"DO $$ BEGIN EXECUTE 'SET shardline.tenant = ''hooli'''; END $$",
				"RESET shardline.tenant",
				"SET shardline.other = 'x'",
				"SHOW shardline.token_digests",
				"SET ROLE postgres",
				"SET SESSION AUTHORIZATION postgres",
			} {
				_, err := app.Exec(ctx, q)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "42602") {
					t.Errorf("%s on %s: %v, want permission denied", q, dsn, err)
				}
				if b := binding(); b != "" {
					t.Fatalf("%s bound %q", q, b)
				}
			}
			if _, err := app.Exec(ctx, "SELECT shardline.enter('hooli', 'not-the-token')"); !isCode(err, "28000") {
				t.Errorf("enter with a wrong token: %v, want 28000", err)
			}
			if b := binding(); b != "" {
				t.Fatalf("a wrong token bound %q", b)
			}
			if _, err := app.Exec(ctx, "SELECT shardline.enter('acme', $1)", token); err != nil {
				t.Fatal(err)
			}
			if b := binding(); b != "acme" {
				t.Fatalf("binding after enter is %q, want acme", b)
			}
			// The role's other sessions are the router's other tenants:
			// their statements are not for it to read.
			for _, q := range []string{"SELECT query FROM pg_stat_activity", "SELECT statement FROM pg_prepared_statements",
				"SELECT query FROM pg_stat_get_activity(NULL)"} {
				if _, err := app.Exec(ctx, q); !isCode(err, "42501") {
					t.Errorf("%s as the app role: %v, want 42501", q, err)
				}
			}
			if _, err := app.Exec(ctx, "SELECT shardline.enter('acme', $1)", token); err != nil {
				t.Fatal(err)
			}
			var seen string
			admin := connectAs(ctx, t, dsn, "postgres")
			if err := admin.QueryRow(ctx, "SELECT coalesce(string_agg(query, ';'), '') FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%enter%'").Scan(&seen); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(seen, token) || !strings.Contains(seen, "$1") {
				t.Fatalf("pg_stat_activity shows %q; want the call with $1, not the token", seen)
			}
			// A rollback undoes a binding made in its transaction.
			tx, err := app.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "SELECT shardline.enter('hooli', $1)", token); err != nil {
				t.Fatal(err)
			}
			_ = tx.Rollback(ctx)
			if b := binding(); b != "acme" {
				t.Fatalf("binding after a rolled-back enter is %q, want acme", b)
			}
			for _, q := range []string{"RESET ALL", "DISCARD ALL"} {
				if _, err := app.Exec(ctx, "SELECT shardline.enter('acme', $1)", token); err != nil {
					t.Fatal(err)
				}
				if _, err := app.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
				if b := binding(); b != "" {
					t.Fatalf("binding after %s is %q, want none", q, b)
				}
			}
		}
	}
}

// TestGuardTokenKept: a restart keeps the token, and a cluster started
// without the guard has none.
func TestGuardTokenKept(t *testing.T) {
	dir := pgtest.Dir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := pgtest.Start(ctx, dir, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	token := l.BindingToken()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "pg", "binding.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("binding.token: %v, mode %v; want 0600", err, fi.Mode())
	}
	l, err = pgtest.Start(ctx, dir, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop(context.Background())
	if l.BindingToken() != token {
		t.Fatal("the token changed across a restart")
	}
}

func connectAs(ctx context.Context, t *testing.T, dsn, user string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = user
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // DISCARD ALL drops cached statements
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
