package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The attacks on the router's front door: passwords, tenant-bound
// credentials and TLS. Each is skipped, saying why, when the router does
// not have the feature configured.

func authAttacks() []attack {
	return []attack{
		{name: "wrong-password", what: "connecting with a wrong password", run: wrongPassword},
		{name: "bound-credential", what: "a tenant-bound user naming another tenant (startup option, SET, comment)", run: boundCredential},
		{name: "plaintext-tls-required", what: "a plaintext connection to a router that requires TLS", run: plaintext},
	}
}

// wrongPassword first checks that the router asks for a password at all
// (a session without one is refused), then tries a wrong one.
func wrongPassword(ctx context.Context, d *isolation, o *outcome) {
	cfg, err := pgconn.ParseConfig(d.cfg.RouterDSN)
	if err != nil {
		o.fail = err
		return
	}
	cfg.Password = ""
	cfg.RuntimeParams["options"] = "-c shardline.tenant=" + d.a
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(cctx, cfg)
	if err == nil {
		c.Close(ctx)
		o.skip = "the router lets clients in without a password (trust): it has no users to check"
		return
	}
	if code := sqlState(err); code != "28P01" && code != "28000" {
		o.fail = fmt.Errorf("connect without a password: %w", err)
		return
	}
	cfg.Password = "wrong-" + d.run
	c, err = pgconn.ConnectConfig(cctx, cfg)
	if err == nil {
		c.Close(ctx)
		o.leak("the router let user %q in with a wrong password", cfg.User)
		return
	}
	o.errs = append(o.errs, "wrong password: "+describe(err))
}

// boundCredential has a user bound to one tenant name the drill's tenants
// in every way the router takes a tenant.
func boundCredential(ctx context.Context, d *isolation, o *outcome) {
	dsn := d.cfg.BoundDSN
	if dsn == "" {
		users, ok := d.cfg.Cluster.(BoundUsers)
		if !ok {
			o.skip = "no tenant-bound user given (--bound-dsn; 'shardline user add' with a tenant makes one)"
			return
		}
		name, password := "drill_iso_"+d.run, "pw-"+d.run+"-"+d.run
		if err := users.AddBoundUser(ctx, name, password, d.a); err != nil {
			o.skip = "the cluster makes no users: " + short(err.Error())
			return
		}
		defer users.RemoveUser(context.WithoutCancel(ctx), name)
		u, err := url.Parse(d.cfg.RouterDSN)
		if err != nil {
			o.fail = err
			return
		}
		u.User = url.UserPassword(name, password)
		dsn = u.String()
	}
	d.cfg.BoundDSN = dsn
	defer func() { d.cfg.BoundDSN = "" }()
	// A new user reaches the router through its watch of etcd: wait for it.
	var c *client
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err = d.connectDSN(ctx, dsn, ""); err == nil || time.Now().After(deadline) || sqlState(err) != "28P01" {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond): // the router's user map follows etcd: polling its state
		}
	}
	if err != nil {
		o.fail = fmt.Errorf("connect as the bound user: %w", err)
		return
	}
	c.o = o
	rows, err := c.exec(ctx, "SHOW shardline.tenant", "", "SHOW shardline.tenant")
	c.close()
	if err != nil || len(rows) != 1 || len(rows[0][0]) == 0 {
		o.fail = fmt.Errorf("the bound user's session has no tenant (SHOW shardline.tenant: %v): is the user bound to one?", err)
		return
	}
	bound := string(rows[0][0])
	sel := "SELECT tenant_id, id, secret FROM " + isoTable
	for _, v := range []string{d.v, d.remote()} {
		if v == bound {
			continue
		}
		// The startup option.
		if c, err := d.connectDSN(ctx, d.cfg.BoundDSN, v); err != nil {
			o.errs = append(o.errs, "startup option: "+describe(err))
		} else {
			c.o = o
			c.exec(ctx, "startup option naming "+d.label(v), bound, sel)
			c.close()
		}
		c, err := d.connectDSN(ctx, d.cfg.BoundDSN, "")
		if err != nil {
			o.fail = err
			return
		}
		c.o = o
		if _, err := c.exec(ctx, "SET naming "+d.label(v), bound, "SET shardline.tenant = "+quoteLit(v)); err == nil {
			c.exec(ctx, "read after SET", bound, sel)
		}
		c.exec(ctx, "comment naming "+d.label(v), bound, sel+" /* tenant='"+v+"' */")
		c.exec(ctx, "INSERT with a comment naming "+d.label(v), bound,
			fmt.Sprintf("INSERT INTO %s VALUES (%s, 106, %s) /* tenant='%s' */", isoTable, quoteLit(v), quoteLit(d.forged()), v))
		c.close()
	}
}

// plaintext asks the router whether it offers TLS (SSLRequest) and then
// starts a session without it.
func plaintext(ctx context.Context, d *isolation, o *outcome) {
	cfg, err := pgconn.ParseConfig(d.cfg.RouterDSN)
	if err != nil {
		o.fail = err
		return
	}
	offered, err := offersTLS(ctx, cfg)
	if err != nil {
		o.fail = fmt.Errorf("SSLRequest: %w", err)
		return
	}
	refusal, err := plaintextStartup(ctx, cfg)
	if err != nil {
		o.fail = fmt.Errorf("plaintext startup: %w", err)
		return
	}
	switch {
	case refusal != nil:
		o.errs = append(o.errs, "plaintext startup: "+describe(refusal))
	case d.cfg.TLSRequired:
		o.leak("the router accepted a plaintext session although TLS is required")
	case !offered:
		o.skip = "the router offers no TLS (--tls-cert and --tls-key, or 'up --tls')"
	default:
		o.skip = "the router offers TLS but does not require it (--tls-required)"
	}
}

// dialRouter opens a raw connection to the DSN's first host.
func dialRouter(ctx context.Context, cfg *pgconn.Config) (net.Conn, error) {
	network, addr := "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		network, addr = "unix", filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	}
	var dl net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := dl.DialContext(dctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, nil
}

// offersTLS sends an SSLRequest and reads the one-byte answer.
func offersTLS(ctx context.Context, cfg *pgconn.Config) (bool, error) {
	conn, err := dialRouter(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	b, err := (&pgproto3.SSLRequest{}).Encode(nil)
	if err != nil {
		return false, err
	}
	if _, err := conn.Write(b); err != nil {
		return false, err
	}
	var ans [1]byte
	if _, err := conn.Read(ans[:]); err != nil {
		return false, err
	}
	switch ans[0] {
	case 'S':
		return true, nil
	case 'N':
		return false, nil
	}
	return false, fmt.Errorf("unexpected answer %q to SSLRequest", ans[0])
}

// plaintextStartup sends a StartupMessage without TLS and returns the
// router's refusal, or nil when it went on to authentication.
func plaintextStartup(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgError, error) {
	conn, err := dialRouter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": cfg.User, "database": cfg.Database}})
	if err := fe.Flush(); err != nil {
		return nil, err
	}
	msg, err := fe.Receive()
	if err != nil {
		return nil, err
	}
	if e, ok := msg.(*pgproto3.ErrorResponse); ok {
		return pgconn.ErrorResponseToPgError(e), nil
	}
	return nil, nil
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
