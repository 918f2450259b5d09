package router

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// tenantRows makes the tenant table enter_notes on every shard, with one
// row of acme and one of hooli on acme's shard, written as postgres.
func tenantRows(t *testing.T) {
	t.Helper()
	needCluster(t)
	ctx := testCtx(t)
	for _, s := range env.pg.Shards() {
		if _, err := postgres.ApplyTenantSchema(ctx, s.Primary.DSN, `
CREATE TABLE IF NOT EXISTS enter_notes (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
DELETE FROM enter_notes;`, "tenant_id"); err != nil {
			t.Fatalf("schema on %s: %v", s.ID, err)
		}
		if s.ID == shardOf(t, "acme") {
			if err := postgres.ApplySchema(ctx, s.Primary.DSN, `INSERT INTO enter_notes VALUES ('acme', 1, 'a'), ('hooli', 1, 'h')`); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBindingCannotBeForged: an acme session tries every way client SQL
// has to write the binding on the server; each is refused there, and the
// session still sees only acme's row. With the binding a plain setting,
// set_config() alone showed hooli's row.
func TestBindingCannotBeForged(t *testing.T) {
	tenantRows(t)
	ctx := testCtx(t)
	_, acmeDSN := startRouter(t, Config{PoolSize: 2, Loops: 1, WaitTimeout: 5 * time.Second})
	c := connectDSN(t, acmeDSN)
	visible := func() []string {
		t.Helper()
		rows, err := c.Query(ctx, "SELECT tenant_id FROM enter_notes ORDER BY tenant_id")
		if err != nil {
			t.Fatal(err)
		}
		ts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if ts := visible(); len(ts) != 1 || ts[0] != "acme" {
		t.Fatalf("acme sees the rows of %v, want only acme's", ts)
	}
	attacks := []string{
		"SELECT set_config('shardline.tenant', 'hooli', false)",
		"SELECT set_config('shard' || 'line.tenant', 'hooli', false)",
		"SELECT set_config(x, 'hooli', false) FROM (VALUES ('shardline.tenant')) v(x)",
		"DO $$ BEGIN PERFORM set_config('shardline.tenant', 'hooli', false); END $$",
		"DO $$ BEGIN EXECUTE 'SET shardline.tenant = ' || quote_literal('hooli'); END $$",
		"SELECT shardline.enter('hooli', 'a-guessed-token')",
		"CREATE FUNCTION pg_temp.f() RETURNS void LANGUAGE sql SET shardline.tenant = 'hooli' AS 'SELECT 1'",
		"SET ROLE postgres",
		"SET SESSION AUTHORIZATION postgres",
		"SELECT current_setting('shardline.token_digests')",
	}
	for _, q := range attacks {
		for _, inTx := range []bool{false, true} {
			var err error
			if inTx {
				err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, q); err != nil {
						return err
					}
					var n int
					if err := tx.QueryRow(ctx, "SELECT count(*) FROM enter_notes WHERE tenant_id = 'hooli'").Scan(&n); err != nil || n > 0 {
						return errors.New("hooli's row is visible")
					}
					return nil
				})
			} else {
				_, err = c.Exec(ctx, q)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "28000" && pe.Code != "42602") {
				t.Errorf("%s (in a transaction: %v): %v, want it refused by the server", q, inTx, err)
			}
			if ts := visible(); len(ts) != 1 || ts[0] != "acme" {
				t.Fatalf("after %s acme sees the rows of %v", q, ts)
			}
		}
	}
}

// TestFailedBindingRunsNothing: when shardline.enter() fails on a server
// connection that was bound to another tenant, the client's statement does
// not run (under that tenant or any), and the client's error carries the
// server's code and message only: with log_parameter_max_length_on_error
// the server's context would show the token.
func TestFailedBindingRunsNothing(t *testing.T) {
	needCluster(t)
	l := pgtest.ForTest(t, 1, 0)
	ctx := testCtx(t)
	primary := l.Shards()[0].Primary.DSN
	if _, err := postgres.ApplyTenantSchema(ctx, primary, `
CREATE TABLE notes (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO notes VALUES ('acme', 1), ('hooli', 1);`, "tenant_id"); err != nil {
		t.Fatal(err)
	}
	sh := l.Shards()[0]
	slots := make([]shardline.ShardID, shardline.SlotCount)
	for i := range slots {
		slots[i] = sh.ID
	}
	p := &shardline.Placement{Revision: 1, Slots: slots, Shards: map[shardline.ShardID]shardline.Shard{sh.ID: sh}}
	_, addr := serveRouter(t, Config{Placement: staticPlacement{p}, PoolSize: 1, Loops: 1, WaitTimeout: 5 * time.Second,
		BindingToken: l.BindingToken(), NoIOUring: testNoIOUring})
	dsn := func(tenant string) string {
		return "postgres://app@" + addr + "/app?sslmode=disable&options=-c%20shardline.tenant%3D" + tenant
	}
	hooli, acme := connectDSN(t, dsn("hooli")), connectDSN(t, dsn("acme"))
	var n int
	if err := hooli.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("hooli sees %d rows (%v), want its 1", n, err)
	}
	// The one server connection is bound to hooli. Now no token is valid.
	admin, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	setDigests := func(v string) {
		t.Helper()
		if _, err := admin.Exec(ctx, "ALTER SYSTEM SET shardline.token_digests = '"+v+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reload", func() bool {
			var got string
			_ = admin.QueryRow(ctx, "SELECT current_setting('shardline.token_digests')").Scan(&got)
			return got == v
		})
	}
	if _, err := acme.Exec(ctx, "SET log_parameter_max_length_on_error = -1"); err != nil {
		t.Fatal(err)
	}
	if err := hooli.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("hooli sees %d rows (%v), want its 1", n, err)
	}
	setDigests(strings.Repeat("0", 64))
	for _, q := range []string{"SELECT count(*) FROM notes", "UPDATE notes SET id = id"} {
		_, err := acme.Exec(ctx, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "could not bind tenant") {
			t.Fatalf("%s with no valid token: %v, want the router's 28000", q, err)
		}
		if strings.Contains(pe.Message+pe.Detail+pe.Where+pe.Hint, l.BindingToken()) || pe.Where != "" || pe.Detail != "" {
			t.Fatalf("the error passes on the server's fields: %+v", pe)
		}
	}
	// In a transaction the client opened, the call is pipelined: a failure
	// fails the transaction, in the extended protocol and the simple one.
	err = pgx.BeginFunc(ctx, acme, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE notes SET id = id + 10")
		return err
	})
	if pgCode(err) != "28000" {
		t.Fatalf("a transaction with no valid token: %v, want the router's 28000", err)
	}
	// The simple protocol, and a session that names its tenant inside the
	// transaction: the router answered the BEGIN, the binding follows it;
	// the transaction fails.
	for _, c := range []*pgx.Conn{acme, connectDSN(t, "postgres://app@"+addr+"/app?sslmode=disable")} {
		pc := c.PgConn()
		if _, err := pc.Exec(ctx, "BEGIN").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, "SET shardline.tenant = 'acme'").ReadAll(); err != nil {
			t.Fatal(err)
		}
		_, err = pc.Exec(ctx, "UPDATE notes SET id = id + 10; SELECT 1").ReadAll()
		if pgCode(err) != "28000" || pc.TxStatus() != 'E' {
			t.Fatalf("simple query in a transaction with no valid token: %v, status %c; want 28000 in a failed transaction", err, pc.TxStatus())
		}
		_, err = pc.Exec(ctx, "SELECT 1").ReadAll()
		if pgCode(err) != "25P02" {
			t.Fatalf("the next statement of the failed transaction: %v, want 25P02", err)
		}
		if _, err := pc.Exec(ctx, "ROLLBACK").ReadAll(); err != nil || pc.TxStatus() != 'I' {
			t.Fatalf("rollback: %v, status %c", err, pc.TxStatus())
		}
	}
	if _, err := admin.Exec(ctx, "ALTER SYSTEM RESET shardline.token_digests"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	var tag string
	waitFor(t, "the token to be valid again", func() bool {
		return acme.QueryRow(ctx, "SELECT string_agg(tenant_id || id, ',') FROM notes").Scan(&tag) == nil
	})
	if err := pgx.BeginFunc(ctx, acme, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT string_agg(tenant_id || id, ',') FROM notes").Scan(&tag)
	}); err != nil || tag != "acme1" {
		t.Fatalf("acme in a transaction sees %q (%v), want acme1", tag, err)
	}
	if tag != "acme1" {
		t.Fatalf("acme sees %q, want acme1: the failed UPDATE ran under another binding, or acme sees hooli's row", tag)
	}
	var ids string
	if err := admin.QueryRow(ctx, "SELECT string_agg(tenant_id || id, ',' ORDER BY tenant_id) FROM notes").Scan(&ids); err != nil || ids != "acme1,hooli1" {
		t.Fatalf("rows are %q (%v), want acme1,hooli1", ids, err)
	}
}

// TestTempTableMadeByFunctionPins: a temporary table made where the router
// cannot see it (dynamic SQL in a DO block) shadows a tenant table for
// every later session of its server connection. The guard reports it, and
// the router keeps that connection to its session: sessions of another
// tenant holding every other connection never see the planted rows.
func TestTempTableMadeByFunctionPins(t *testing.T) {
	tenantRows(t)
	ctx := testCtx(t)
	const pool = 3
	_, acmeDSN := startRouter(t, Config{PoolSize: pool, Loops: 1, WaitTimeout: time.Second})
	hooliDSN := strings.Replace(acmeDSN, "tenant%3Dacme", "tenant%3Dhooli", 1)
	a := connectDSN(t, acmeDSN)
	if _, err := a.Exec(ctx, `DO $$ BEGIN
		EXECUTE 'CREATE TEMP TABLE enter_notes (tenant_id text, id int, body text)';
		EXECUTE 'INSERT INTO pg_temp.enter_notes VALUES (''hooli'', 9, ''planted'')';
	END $$`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM pg_temp.enter_notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the session lost its temporary table: %d, %v", n, err)
	}
	held := 0
	for range pool {
		h := connectDSN(t, hooliDSN)
		tx, err := h.Begin(ctx)
		if err != nil {
			continue // no connection left: the pinned one is not in the pool
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		var planted int
		err = tx.QueryRow(ctx, "SELECT count(*) FROM enter_notes WHERE body = 'planted'").Scan(&planted)
		if err != nil {
			continue
		}
		held++
		if planted != 0 {
			t.Fatal("a hooli session read the rows another session planted in a temporary table")
		}
	}
	if held != pool-1 {
		t.Fatalf("hooli sessions held %d server connections, want %d (all but the pinned one)", held, pool-1)
	}
}
