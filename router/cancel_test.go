package router

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline"
)

func TestCancelReachesTheServer(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dcancel1&application_name=cancel1")
	checkCancel(t, c, shardOf(t, "cancel1"))
}

// checkCancel cancels a statement of c, a router session on shard, with
// the key the router gave the client, and checks that the statement ends
// cancelled and the session goes on.
func checkCancel(t *testing.T, c *pgx.Conn, shard shardline.ShardID) {
	t.Helper()
	checkCancelWith(t, c, shard, c.PgConn().CancelRequest)
}

// checkCancelWith is checkCancel with the cancel request sent by cancel.
func checkCancelWith(t *testing.T, c *pgx.Conn, shard shardline.ShardID, cancel func(context.Context) error) {
	t.Helper()
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	// Wait until the statement runs on the shard, then cancel through the
	// router.
	d := direct(t, shard)
	for {
		var running int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'").Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("sleep ended before it was cancelled: %v", err)
		case <-time.After(10 * time.Millisecond): // polling another server's state
		}
	}
	if err := cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; pgCode(err) != "57014" {
		t.Fatalf("cancelled statement: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("session after cancel: %v", err)
	}
}
