package router

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// noisyCopySchema is a table whose trigger raises a notice for every row,
// so that the server speaks while its client is still sending COPY data,
// and raises an error for n < 0.
const noisyCopySchema = `
CREATE TABLE IF NOT EXISTS noisy (tenant_id text NOT NULL, n int, pad text);
CREATE OR REPLACE FUNCTION noisy_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.n < 0 THEN
		RAISE EXCEPTION 'negative row %', NEW.n USING ERRCODE = '22003';
	END IF;
	RAISE NOTICE 'row % of tenant % arrived with a notice long enough to fill the socket quickly: %', NEW.n, NEW.tenant_id, repeat('x', 200);
	RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS noisy_row ON noisy;
CREATE TRIGGER noisy_row BEFORE INSERT ON noisy FOR EACH ROW EXECUTE FUNCTION noisy_row();`

// TestCopyWithNoticePerRow copies rows into a table that sends a notice
// per row: the notices (far more than the sockets hold) must reach the
// client while it is still sending, or server and router stall writing to
// each other.
func TestCopyWithNoticePerRow(t *testing.T) {
	applySchema(t, noisyCopySchema)
	notices := 0
	cfg, err := pgx.ParseConfig(routerDSN("options=-c%20shardline.tenant%3Dnoisy1"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(*pgconn.PgConn, *pgconn.Notice) { notices++ }
	ctx := testCtx(t)
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "DELETE FROM noisy WHERE tenant_id = 'noisy1'"); err != nil {
		t.Fatal(err)
	}
	const rows = 100000 // 1.2 MB of rows, 30 MB of notices: far more than the sockets and the send queue hold
	src := make([][]any, rows)
	for i := range src {
		src[i] = []any{"noisy1", i, "p"}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"noisy"}, []string{"tenant_id", "n", "pad"}, pgx.CopyFromRows(src))
	if err != nil || n != rows {
		t.Fatalf("CopyFrom: %d rows, %v", n, err)
	}
	if notices != rows {
		t.Fatalf("%d notices reached the client, want %d", notices, rows)
	}
	var cnt int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM noisy WHERE tenant_id = 'noisy1'").Scan(&cnt); err != nil || cnt != rows {
		t.Fatalf("count after copy: %d %v", cnt, err)
	}
}

// rawCopyClient is a client that speaks the protocol by hand, for COPY
// streams a driver would not send: a copy left open, a client that goes
// away mid-copy.
type rawCopyClient struct {
	conn net.Conn
	fe   *pgproto3.Frontend
}

func dialRaw(t *testing.T, tenant string) *rawCopyClient {
	t.Helper()
	needCluster(t)
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &rawCopyClient{conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "app", "database": "app", "shardline.tenant": tenant}})
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
	return c
}

// until receives messages until done says stop, failing the test on an
// ErrorResponse done does not take or on the connection's deadline.
func (c *rawCopyClient) until(t *testing.T, done func(pgproto3.BackendMessage) bool) pgproto3.BackendMessage {
	t.Helper()
	for {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if done(m) {
			return m
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("unexpected error: %s %s", e.Code, e.Message)
		}
	}
}

// TestCopyErrorReachesClientAtOnce sends a row the server rejects and
// leaves the copy open: the server's error must reach the client without
// waiting for CopyDone, and the session must serve queries after it.
func TestCopyErrorReachesClientAtOnce(t *testing.T) {
	applySchema(t, noisyCopySchema)
	c := dialRaw(t, "noisy2")
	c.fe.Send(&pgproto3.Query{String: "COPY noisy (tenant_id, n, pad) FROM STDIN"})
	_ = c.fe.Flush()
	c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
	c.fe.Send(&pgproto3.CopyData{Data: []byte("noisy2\t1\tp\nnoisy2\t-1\tp\n")})
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// No CopyDone: the error is the server's to send now.
	m := c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ErrorResponse); return ok })
	if e := m.(*pgproto3.ErrorResponse); e.Code != "22003" {
		t.Fatalf("error %s %s, want 22003", e.Code, e.Message)
	}
	c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
	// The client still ends its copy; the server (and the router) drop it.
	c.fe.Send(&pgproto3.CopyData{Data: []byte("noisy2\t2\tp\n")})
	c.fe.Send(&pgproto3.CopyDone{})
	c.fe.Send(&pgproto3.Query{String: "SELECT count(*) FROM noisy WHERE tenant_id = 'noisy2'"})
	_ = c.fe.Flush()
	m = c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.DataRow); return ok })
	if got := string(m.(*pgproto3.DataRow).Values[0]); got != "0" {
		t.Fatalf("rows after a failed copy: %s, want 0", got)
	}
	c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
}

// TestCopyClientGoneLeavesNoBackendInCopy starts a copy whose server sends
// a notice per row, then goes away without ending it: no server backend
// may stay in COPY for it.
func TestCopyClientGoneLeavesNoBackendInCopy(t *testing.T) {
	applySchema(t, noisyCopySchema)
	c := dialRaw(t, "noisy3")
	c.fe.Send(&pgproto3.Query{String: "COPY noisy (tenant_id, n, pad) FROM STDIN /* gone client */"})
	_ = c.fe.Flush()
	c.until(t, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
	var sb strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&sb, "noisy3\t%d\tp\n", i)
	}
	// Never read: the notices back up as far as the sockets allow.
	for i := 0; i < 20; i++ { // 1.2 MB: more than the sockets and the router's send queue hold
		c.fe.Send(&pgproto3.CopyData{Data: []byte(sb.String())})
	}
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	ctx := testCtx(t)
	d := direct(t, shardOf(t, "noisy3"))
	const inCopy = `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY noisy%gone client%' AND state = 'active' AND pid <> pg_backend_pid()`
	for {
		var n int
		if err := d.QueryRow(ctx, inCopy).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d server backends still run the gone client's COPY", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestCopyInAndOut(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS copied (tenant_id text NOT NULL, n int); DELETE FROM copied`)
	c := connect(t, "options=-c%20shardline.tenant%3Dcopy1")
	ctx := testCtx(t)
	rows := make([][]any, 5000)
	for i := range rows {
		rows[i] = []any{"copy1", i}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"tenant_id", "n"}, pgx.CopyFromRows(rows))
	if err != nil || n != int64(len(rows)) {
		t.Fatalf("CopyFrom: %d %v", n, err)
	}
	var buf strings.Builder
	tag, err := c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT n FROM copied WHERE tenant_id = 'copy1' ORDER BY n) TO STDOUT")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != int64(len(rows)) || !strings.HasPrefix(buf.String(), "0\n1\n2\n") {
		t.Fatalf("CopyTo: %d rows, starts %q", tag.RowsAffected(), buf.String()[:min(20, buf.Len())])
	}
	var cnt int
	if err := direct(t, shardOf(t, "copy1")).QueryRow(ctx, "SELECT count(*) FROM copied WHERE tenant_id='copy1'").Scan(&cnt); err != nil || cnt != len(rows) {
		t.Fatalf("rows on shard: %d %v", cnt, err)
	}
	// A failing COPY reports the server's error and the session goes on.
	_, err = c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"tenant_id", "nope"}, pgx.CopyFromRows(rows[:1]))
	if pgCode(err) != "42703" {
		t.Fatalf("copy into a missing column: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&cnt); err != nil {
		t.Fatal(err)
	}
}
