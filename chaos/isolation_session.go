package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// outcome is what one attack observed: the leaks its sessions saw, the
// errors that stopped its statements, and whether it could run at all.
type outcome struct {
	leaks []string // what the attacker read (or the attack found) that it must not have
	errs  []string // each failed statement: what refused it
	skip  string   // the attack's feature is not configured: why
	fail  error    // the attack could not run
	// blockedBy overrides what the verdict says stopped the attack.
	blockedBy string
}

func (o *outcome) leak(format string, args ...any) {
	o.leaks = append(o.leaks, fmt.Sprintf(format, args...))
}

// client is one session through the router, as one tenant.
type client struct {
	d       *isolation
	o       *outcome
	conn    *pgconn.PgConn
	tenant  string // the tenant its startup option names
	notices bytes.Buffer
}

// connect opens a session through the router as tenant t ("" for none).
func (d *isolation) connect(ctx context.Context, t string) (*client, error) {
	return d.connectDSN(ctx, d.cfg.RouterDSN, t)
}

func (d *isolation) connectDSN(ctx context.Context, dsn, t string) (*client, error) {
	if t != "" {
		var err error
		if dsn, err = withOptions(dsn, "-c shardline.tenant="+t); err != nil {
			return nil, err
		}
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("router DSN: %w", err)
	}
	c := &client{d: d, tenant: t, o: &outcome{}}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		c.notices.WriteString(n.Message + " " + n.Detail + "\n")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c.conn, err = pgconn.ConnectConfig(cctx, cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// session opens a session for an attack: its observations go to o. A
// failure to connect is the attack's failure.
func (d *isolation) session(ctx context.Context, o *outcome, t string) *client {
	c, err := d.connect(ctx, t)
	if err != nil {
		if o.fail == nil {
			o.fail = fmt.Errorf("connect as %s: %w", d.label(t), err)
		}
		return nil
	}
	c.o = o
	return c
}

func (c *client) close() {
	if c != nil && c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.conn.Close(ctx)
	}
}

// exec runs sql (one or more statements, simple protocol) as step label;
// the session may see rows of tenant as only. It returns the rows of
// every statement that ran and the first error.
func (c *client) exec(ctx context.Context, label, as, sql string) ([][][]byte, error) {
	if c == nil {
		return nil, errors.New("no session")
	}
	res, err := c.conn.Exec(ctx, sql).ReadAll()
	var rows [][][]byte
	for _, r := range res {
		rows = append(rows, r.Rows...)
		if err == nil {
			err = r.Err
		}
	}
	c.observe(label, as, rows, err)
	return rows, err
}

// prepared executes the named prepared statement as step label.
func (c *client) prepared(ctx context.Context, label, as, name string) ([][][]byte, error) {
	r := c.conn.ExecPrepared(ctx, name, nil, nil, nil).Read()
	c.observe(label, as, r.Rows, r.Err)
	return r.Rows, r.Err
}

// observe scans what a step got back (rows, notices, the error's text) for
// the secrets of tenants other than as, and records its error.
func (c *client) observe(label, as string, rows [][][]byte, err error) {
	var text bytes.Buffer
	for _, r := range rows {
		for _, v := range r {
			text.Write(v)
			text.WriteByte('\n')
		}
	}
	text.Write(c.notices.Bytes())
	c.notices.Reset()
	if err != nil {
		text.WriteString(err.Error())
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			text.WriteString(" " + pe.Detail + " " + pe.Where)
			c.o.errs = append(c.o.errs, label+": "+describe(err))
		case c.o.fail == nil:
			// Not a refusal: a broken or timed-out session says nothing
			// of isolation.
			c.o.fail = fmt.Errorf("%s: %w", label, err)
		}
	}
	c.d.scan(c.o, label, as, text.Bytes())
}

// scan records a leak for every drill tenant other than as whose secrets
// appear in text.
func (d *isolation) scan(o *outcome, label, as string, text []byte) {
	for _, t := range d.tenants() {
		if t == as {
			continue
		}
		if n := bytes.Count(text, []byte("s:"+d.run+":"+t+":")); n > 0 {
			o.leak("read %d row(s) of %s (%s)", n, d.label(t), label)
		}
	}
}

// describe says what refused a statement: the router (its errors carry no
// source location, PostgreSQL's always do), row-level security, or
// PostgreSQL's privileges.
func describe(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "connection: " + short(err.Error())
	}
	msg := short(pe.Message)
	switch {
	case pe.Routine == "" && pe.File == "":
		return fmt.Sprintf("router %s (%s)", pe.Code, msg)
	case strings.Contains(pe.Message, "row-level security"):
		return fmt.Sprintf("row-level security %s (%s)", pe.Code, msg)
	case pe.Code == "42501":
		return fmt.Sprintf("PostgreSQL permission denied 42501 (%s)", msg)
	}
	return fmt.Sprintf("PostgreSQL %s (%s)", pe.Code, msg)
}

func short(s string) string {
	if len(s) > 90 {
		return s[:87] + "..."
	}
	return s
}

// verdict turns an outcome into a result: LEAKED on any leak, else
// skipped, failed or blocked (by the statements' errors, or by ok when
// none failed).
func verdict(at attack, o *outcome, writeLeaks []string) AttackResult {
	r := AttackResult{Attack: at.name, What: at.what}
	leaks := append(o.leaks, writeLeaks...)
	switch {
	case len(leaks) > 0:
		r.Result, r.Leak = Leaked, strings.Join(dedupe(leaks), "; ")
	case o.fail != nil:
		r.Result, r.Reason = Failed, short(o.fail.Error())
	case o.skip != "":
		r.Result, r.Reason = Skipped, o.skip
	case o.blockedBy != "":
		r.Result, r.BlockedBy = Blocked, o.blockedBy
	case len(o.errs) > 0:
		r.Result, r.BlockedBy = Blocked, strings.Join(dedupe(o.errs), "; ")
	default:
		r.Result, r.BlockedBy = Blocked, at.ok
	}
	return r
}

func dedupe(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// runAttack runs one attack from the seeded state and judges it; the
// seeded state is restored after it.
func (d *isolation) runAttack(ctx context.Context, at attack) AttackResult {
	o := &outcome{}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	at.run(actx, d, o)
	cancel()
	writers := []string{d.a}
	if at.writers != nil {
		writers = append(writers, at.writers(d)...)
	}
	wl, changed, err := d.writeLeaks(ctx, writers)
	if err != nil && o.fail == nil {
		o.fail = err
	}
	if changed {
		if err := d.restore(ctx); err != nil && o.fail == nil {
			o.fail = err
		}
	}
	if err := d.dropLeftovers(ctx); err != nil && o.fail == nil {
		o.fail = err
	}
	return verdict(at, o, wl)
}
