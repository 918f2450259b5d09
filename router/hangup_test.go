package router

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestClientGoneMidTransactionLeavesNothingOpen(t *testing.T) {
	applySchema(t, ledgerDDL)
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, routerDSN("options=-c%20shardline.tenant%3Dgone1&application_name=gone1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := c.QueryRow(ctx, "INSERT INTO ledger VALUES ('gone1', 1) RETURNING pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// Drop the TCP connection without Terminate.
	_ = c.PgConn().Conn().Close()
	d := direct(t, shardOf(t, "gone1"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state LIKE 'idle in transaction%'", pid).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server connection still idle in transaction after the client went away")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition on another server
	}
	var n int
	if err := d.QueryRow(ctx, "SELECT count(*) FROM ledger WHERE tenant_id='gone1'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("uncommitted row visible: %d %v", n, err)
	}
}

// TestIdleConnectionKilledOnServer: a pooled connection the server closed
// while idle is replaced, not handed to a session.
func TestIdleConnectionKilledOnServer(t *testing.T) {
	ctx := testCtx(t)
	c := connect(t, "options=-c%20shardline.tenant%3Didlekill")
	var pid int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	d := direct(t, shardOf(t, "idlekill"))
	var ok bool
	if err := d.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate: %v %v", ok, err)
	}
	// Await the server process's exit.
	for {
		var n int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling another server's state
	}
	var pid2 int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatalf("session after its idle server connection was terminated: %v", err)
	}
	if pid2 == pid {
		t.Fatal("same server pid after termination")
	}
}
