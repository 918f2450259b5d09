package router

import (
	"net"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestIdleSessionStack checks what an idle session costs in stack: after a
// simple and an extended-protocol query, each session's coroutine should
// hold a 4 KiB stack. A handler frame that grows (an inlined helper's
// temporaries, see push) pushes the deepest path past 4 KiB and every
// session to 8 KiB, a quarter of the memory budget of an idle connection
// (README, Performance). The clients speak the protocol on plain sockets,
// so the only goroutines the test adds are the router's sessions.
func TestIdleSessionStack(t *testing.T) {
	needCluster(t)
	const n = 200
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		c, err := net.Dial("tcp", env.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": "app", "database": "app", "options": "-c shardline.tenant=stack"}})
		awaitReady(t, fe, i)
		fe.Send(&pgproto3.Query{String: "SELECT 1"})
		awaitReady(t, fe, i)
		fe.Send(&pgproto3.Parse{Query: "SELECT $1::int"})
		fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}})
		fe.Send(&pgproto3.Describe{ObjectType: 'P'})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
		awaitReady(t, fe, i)
	}
	runtime.ReadMemStats(&after)
	perSession := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("stack per idle session: %d bytes", perSession)
	if perSession > 6<<10 {
		t.Fatalf("stack per idle session is %d bytes, want 4 KiB (at most 6 KiB): a frame on the session's path grew", perSession)
	}
}

// awaitReady flushes fe and reads until ReadyForQuery, failing on an error.
func awaitReady(t *testing.T, fe *pgproto3.Frontend, session int) {
	t.Helper()
	if err := fe.Flush(); err != nil {
		t.Fatalf("session %d: %v", session, err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("session %d: %v", session, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			t.Fatalf("session %d: %s: %s", session, m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return
		}
	}
}
