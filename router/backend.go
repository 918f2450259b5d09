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
	"github.com/shardline/shardline/internal/netloop"
)

// backend is one server connection of a shard pool. It is used by one
// session at a time (between acquire and release) and needs no lock.
type backend struct {
	pool *pool
	conn *netloop.Conn
	in   *msgReader
	out  *bufio.Writer

	pid    uint32
	secret []byte
	// Where the connection went (tcp host:port or a unix socket path),
	// for cancel requests.
	network, addr string

	// What this connection carries, so a transaction skips the setup it
	// already has.
	tenant   shardline.TenantID // bound shardline.tenant ("" = reset)
	applied  string             // session settings applied (see session.paramSQL)
	prepared map[string]struct{}
	// enterParsed: the shardline.enter() call is prepared (enter.go).
	enterParsed bool
	swept       uint64 // sharedStmts.gen at the last sweep of prepared
	broken      bool   // protocol state unknown: close instead of reuse
	lastUsed    time.Time
}

// appliedUnknown is backend.applied for a connection whose settings the
// router does not know (a transaction changed them): it matches no
// session's, so the next transaction resets them (RESET ALL) and replays
// its own.
const appliedUnknown = "\x00changed"

// dialBackend connects and authenticates with pgconn, checks the role
// (checkRole), then takes over the raw connection: the router relays
// protocol bytes itself. A refused role is an *Error.
func dialBackend(ctx context.Context, p *pool) (*backend, map[string]string, error) {
	pc, err := pgconn.ConnectConfig(ctx, p.cfg.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	if !p.allowSuperuser {
		if err := checkRole(ctx, p, pc); err != nil {
			pc.Close(ctx)
			return nil, nil, err
		}
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	if tc, ok := hc.Conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	conn, err := netloop.Wrap(hc.Conn)
	if err != nil {
		hc.Conn.Close()
		return nil, nil, fmt.Errorf("connect to shard %s: %w", p.shard, err)
	}
	ra := conn.RemoteAddr()
	b := &backend{
		pool:     p,
		conn:     conn,
		in:       newMsgReader(conn, 32<<10),
		out:      bufio.NewWriterSize(conn, 32<<10),
		pid:      hc.PID,
		secret:   hc.SecretKey,
		network:  ra.Network(),
		addr:     ra.String(),
		prepared: make(map[string]struct{}),
	}
	return b, hc.ParameterStatuses, nil
}

// bypassRLSQuery asks whether the connection's role skips row-level
// security.
const bypassRLSQuery = "SELECT rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user"

// checkRole refuses a server connection whose role is a superuser (the
// server reports is_superuser at startup) or BYPASSRLS (one query): row-level
// security binds neither, so the tenant binding would not hold on it. The
// refusal is an *Error (28000).
func checkRole(ctx context.Context, p *pool, pc *pgconn.PgConn) error {
	user := pc.ParameterStatus("session_authorization")
	if user == "" {
		user = p.cfg.User
	}
	what := ""
	if pc.ParameterStatus("is_superuser") == "on" {
		what = "a superuser"
	} else {
		res := pc.ExecParams(ctx, bypassRLSQuery, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("connect to shard %s: check role %s: %w", p.shard, user, res.Err)
		}
		if len(res.Rows) == 1 && string(res.Rows[0][0]) == "t" {
			what = "BYPASSRLS"
		}
	}
	if what == "" {
		return nil
	}
	return &Error{Code: codeInvalidAuthorization,
		Message: fmt.Sprintf("shard %s: the router's server role %q is %s, so row-level security would not bind its sessions", p.shard, user, what),
		Hint:    "Give the shard a server_user that is neither superuser nor BYPASSRLS; 'shardline up' creates shardline_app (--allow-superuser allows it, for development only)."}
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
	c, err := d.DialContext(ctx, b.network, b.addr)
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

// alive reports whether the server has not closed the idle connection,
// with one non-blocking peek at the socket: no data means it is open; EOF,
// an error or any data (an idle server sends nothing but a termination
// notice) means it is not usable.
func (b *backend) alive() bool {
	return b.in.buffered() == 0 && b.conn.PeerOpen()
}
