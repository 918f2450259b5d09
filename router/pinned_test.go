package router

import (
	"fmt"
	"testing"
)

// TestListenPinsTheSession: LISTEN keeps the session on its server
// connection, so notifications reach it and no other session.
func TestListenPinsTheSession(t *testing.T) {
	ctx := testCtx(t)
	l := connect(t, "options=-c%20shardline.tenant%3Dpinlisten")
	if _, err := l.Exec(ctx, "LISTEN jobs"); err != nil {
		t.Fatal(err)
	}
	// Other sessions on the same shard cycle through the pool meanwhile.
	for i := 0; i < testPoolSize*2; i++ {
		o := connect(t, "options=-c%20shardline.tenant%3Dpinlisten")
		if _, err := o.Exec(ctx, "SELECT pg_notify('jobs', 'n"+fmt.Sprint(i)+"')"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < testPoolSize*2; i++ {
		n, err := l.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if n.Channel != "jobs" {
			t.Fatalf("notification on %q", n.Channel)
		}
	}
	var one int
	if err := l.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}
