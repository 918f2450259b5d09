package router

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestUntrackedSettingsStayInTheirSession changes settings the router
// cannot track (a SET inside a multi-statement query, set_config) and
// LISTENs inside a multi-statement query: no later session on the same
// server connections may see any of it.
func TestUntrackedSettingsStayInTheirSession(t *testing.T) {
	ctx := testCtx(t)
	const opts = "options=-c%20shardline.tenant%3Dleak1"
	a := connect(t, opts)
	if _, err := a.Exec(ctx, "SET work_mem = '7MB'; SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SELECT set_config('statement_timeout', '123s', false)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SELECT set_config('lock_timeout', '77s', false)", pgx.QueryExecModeExec); err != nil {
		t.Fatal(err)
	}
	a.Close(ctx)
	for i := 0; i < 2*testPoolSize; i++ {
		b := connect(t, opts)
		var workMem, stmtTimeout, lockTimeout string
		if err := b.QueryRow(ctx, "SELECT current_setting('work_mem'), current_setting('statement_timeout'), current_setting('lock_timeout')",
			pgx.QueryExecModeSimpleProtocol).Scan(&workMem, &stmtTimeout, &lockTimeout); err != nil {
			t.Fatal(err)
		}
		if workMem == "7MB" || stmtTimeout == "123s" || lockTimeout == "77s" {
			t.Fatalf("session %d sees another session's settings: work_mem %s, statement_timeout %s, lock_timeout %s",
				i, workMem, stmtTimeout, lockTimeout)
		}
		b.Close(ctx)
	}

	l := connect(t, opts)
	if _, err := l.Exec(ctx, "SELECT 1; LISTEN leak_chan"); err != nil {
		t.Fatal(err)
	}
	other := connect(t, opts)
	if _, err := other.Exec(ctx, "NOTIFY leak_chan, 'to the listener'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := l.WaitForNotification(wctx)
	if err != nil || n.Payload != "to the listener" {
		t.Fatalf("the listening session: %v %v", n, err)
	}
	l.Close(ctx)
	// Sessions after it must not get notifications on its channel.
	for i := 0; i < 2*testPoolSize; i++ {
		var got *pgconn.Notification
		cfg, err := pgx.ParseConfig(routerDSN(opts))
		if err != nil {
			t.Fatal(err)
		}
		cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { got = n }
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "NOTIFY leak_chan, 'after'; SELECT pg_sleep(0)"); err != nil {
			t.Fatal(err)
		}
		// A notification to the same connection arrives with the
		// query's results, before its ReadyForQuery.
		c.Close(ctx)
		if got != nil {
			t.Fatalf("session %d got the gone listener's notification %q", i, got.Payload)
		}
	}
}
