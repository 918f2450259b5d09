package router

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
)

// backend is one server connection of a shard pool. It is used by one
// session at a time (between acquire and release) and needs no lock.
type backend struct {
	pool *pool
	conn net.Conn
	in   *msgReader
	out  *bufio.Writer

	pid    uint32
	secret []byte
	addr   string // host:port, for cancel requests

	// What this connection carries, so a transaction skips the setup it
	// already has.
	tenant   shardline.TenantID // bound shardline.tenant ("" = reset)
	applied  string             // session settings applied (see session.paramSQL)
	prepared map[string]struct{}
	broken   bool // protocol state unknown: close instead of reuse
	lastUsed time.Time
}

// dialBackend connects and authenticates with pgconn, then takes over the
// raw connection: the router relays protocol bytes itself.
func dialBackend(ctx context.Context, p *pool) (*backend, map[string]string, error) {
	pc, err := pgconn.ConnectConfig(ctx, p.cfg.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	if tc, ok := hc.Conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	b := &backend{
		pool:     p,
		conn:     hc.Conn,
		in:       newMsgReader(hc.Conn, 32<<10),
		out:      bufio.NewWriterSize(hc.Conn, 32<<10),
		pid:      hc.PID,
		secret:   hc.SecretKey,
		addr:     net.JoinHostPort(hc.Config.Host, fmt.Sprint(hc.Config.Port)),
		prepared: make(map[string]struct{}),
	}
	return b, hc.ParameterStatuses, nil
}

// close sends Terminate and closes the connection. Closing ends any
// transaction the server still had open.
func (b *backend) close() {
	b.out.Reset(b.conn)
	writeMsg(b.out, 'X', nil)
	_ = b.out.Flush()
	_ = b.conn.Close()
}

// cancel asks the server to cancel what this connection runs now.
func (b *backend) cancel(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := make([]byte, 12, 12+len(b.secret))
	binary.BigEndian.PutUint32(msg[0:], uint32(12+len(b.secret)))
	binary.BigEndian.PutUint32(msg[4:], 80877102)
	binary.BigEndian.PutUint32(msg[8:], b.pid)
	msg = append(msg, b.secret...)
	_, err = c.Write(msg)
	return err
}

// alive reports whether the server has not closed the idle connection: a
// read that would block means it is open; EOF or any data means it is not
// usable (an idle server sends nothing but a termination notice).
func (b *backend) alive() bool {
	if b.in.buffered() > 0 {
		return false
	}
	_ = b.conn.SetReadDeadline(time.Now().Add(50 * time.Microsecond))
	_, err := b.in.r.Peek(1)
	_ = b.conn.SetReadDeadline(time.Time{})
	return err != nil && isTimeout(err)
}
