package router

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSessionSettingsFollowTheSession checks that a session SET is applied
// on whichever server connection serves the session next, and never leaks
// into another session.
func TestSessionSettingsFollowTheSession(t *testing.T) {
	a := connect(t, "options=-c%20shardline.tenant%3Dset1")
	ctx := testCtx(t)
	if _, err := a.Exec(ctx, "SET my.flavour = 'salty'"); err != nil {
		t.Fatal(err)
	}
	// Other sessions of the same shard take every server connection in
	// turn, so a's next transactions land on different ones.
	others := make([]*pgx.Conn, testPoolSize-1)
	for i := range others {
		others[i] = connect(t, "options=-c%20shardline.tenant%3Dset1")
	}
	seen := map[uint32]bool{}
	for round := 0; round < 6; round++ {
		var txs []pgx.Tx
		for i, o := range others[:round%len(others)+1] {
			tx, err := o.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var v *string
			if err := tx.QueryRow(ctx, "SELECT current_setting('my.flavour', true)").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != nil && *v != "" {
				t.Fatalf("round %d: session %d sees another session's setting my.flavour=%q", round, i, *v)
			}
			txs = append(txs, tx)
		}
		var v string
		var pid uint32
		if err := a.QueryRow(ctx, "SELECT current_setting('my.flavour'), pg_backend_pid()").Scan(&v, &pid); err != nil {
			t.Fatal(err)
		}
		if v != "salty" {
			t.Fatalf("round %d: session's own setting = %q on server pid %d", round, v, pid)
		}
		seen[pid] = true
		for _, tx := range txs {
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) < 2 {
		t.Fatalf("session used only %d server connection(s); the test needs it to move", len(seen))
	}
	if _, err := a.Exec(ctx, "RESET my.flavour"); err != nil {
		t.Fatal(err)
	}
	var v *string
	if err := a.QueryRow(ctx, "SELECT current_setting('my.flavour', true)").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != nil && *v != "" {
		t.Fatalf("after RESET: %q", *v)
	}
}

func TestBadStartupSettings(t *testing.T) {
	needCluster(t)
	ctx := testCtx(t)
	// A setting the server does not know fails the connection, as PostgreSQL would.
	_, err := pgx.Connect(ctx, routerDSN("options=-c%20no_such_setting%3D1"))
	if pgCode(err) != "42704" {
		t.Fatalf("unknown startup setting: %v", err)
	}
	// Options that do not parse as -c name=value.
	_, err = pgx.Connect(ctx, routerDSN("options=-c+shardline.tenant%3Dx"))
	if pgCode(err) != codeInvalidParameter {
		t.Fatalf("malformed options: %v", err)
	}
	// A bad value of a real setting.
	_, err = pgx.Connect(ctx, routerDSN("options=-c%20statement_timeout%3Dforever"))
	if pgCode(err) != "22023" {
		t.Fatalf("bad setting value: %v", err)
	}
	// A valid one works, and is applied.
	c := connect(t, "options=-c%20statement_timeout%3D1234%20-c%20shardline.tenant%3Dst")
	var v string
	if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil || v != "1234ms" {
		t.Fatalf("statement_timeout = %q, %v", v, err)
	}
}
