package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The attacks on state that server connections carry from one session to
// the next: prepared statements, cursors and temporary tables. A session's
// transactions run on pooled server connections, so what one session
// leaves on a connection the next one meets.

// poolTries is how many fresh sessions a pooled attack tries before it
// concludes that it never shared a server connection with its victim.
const poolTries = 6

// preparedAcrossTenants prepares statements under the attacker (with
// generic plans forced, so the plan is made once), switches the session to
// the neighbour and runs them again: the rows must follow the binding. The
// protocol's named statement and SQL PREPARE (which pins the session) run
// in sessions of their own.
func preparedAcrossTenants(ctx context.Context, d *isolation, o *outcome) {
	sel := "SELECT tenant_id, id, secret FROM " + isoTable
	switchTo := "SET shardline.tenant = " + quoteLit(d.v)
	if c := d.attacker(ctx, o); c != nil {
		name := isoTable + "_p"
		c.exec(ctx, "generic plans", d.a, "SET plan_cache_mode = force_generic_plan")
		_, err := c.conn.Prepare(ctx, name, sel, nil)
		c.observe("protocol Prepare", d.a, nil, err)
		if err == nil {
			c.prepared(ctx, "protocol statement as the attacker", d.a, name)
			c.prepared(ctx, "protocol statement as the attacker", d.a, name)
			if _, err := c.exec(ctx, "switch to the neighbour", d.a, switchTo); err == nil {
				c.prepared(ctx, "protocol statement after the switch", d.v, name)
			}
		}
		c.close()
	}
	if c := d.attacker(ctx, o); c != nil {
		c.exec(ctx, "generic plans", d.a, "SET plan_cache_mode = force_generic_plan")
		if _, err := c.exec(ctx, "PREPARE", d.a, "PREPARE "+isoTable+"_q AS "+sel); err == nil {
			c.exec(ctx, "EXECUTE as the attacker", d.a, "EXECUTE "+isoTable+"_q")
			if _, err := c.exec(ctx, "switch to the neighbour after PREPARE", d.a, switchTo); err == nil {
				c.exec(ctx, "EXECUTE after the switch", d.v, "EXECUTE "+isoTable+"_q")
			}
		}
		c.close()
	}
}

// otherSessionsStatements has the neighbour prepare a statement whose text
// holds a literal of its own and open a WITH HOLD cursor, and fresh
// attacker sessions look for both on the server connections they get.
func otherSessionsStatements(ctx context.Context, d *isolation, o *outcome) {
	marker := "p:" + d.run + ":" + d.v
	v := d.session(ctx, o, d.v)
	if v == nil {
		return
	}
	defer v.close()
	name := isoTable + "_vp"
	_, err := v.conn.Prepare(ctx, name, "SELECT pg_backend_pid()::text, secret FROM "+isoTable+" WHERE secret <> '"+marker+"'", nil)
	if err != nil {
		o.fail = fmt.Errorf("the neighbour's Prepare: %w", err)
		return
	}
	cur := d.session(ctx, o, d.v)
	if cur == nil {
		return
	}
	defer cur.close()
	if _, err := cur.exec(ctx, "neighbour's WITH HOLD cursor", d.v, "DECLARE "+isoTable+"_c CURSOR WITH HOLD FOR SELECT secret FROM "+isoTable); err != nil {
		o.fail = fmt.Errorf("the neighbour's cursor: %w", err)
		return
	}
	shared := ""
	denied := false // the attacker may not read pg_prepared_statements at all
	for i := 0; i < poolTries && shared == "" && !denied; i++ {
		rows, err := v.prepared(ctx, "neighbour's statement", d.v, name)
		if err != nil || len(rows) == 0 {
			o.fail = fmt.Errorf("the neighbour's statement: %v (%d rows)", err, len(rows))
			return
		}
		vpid := string(rows[0][0])
		a := d.attacker(ctx, o)
		if a == nil {
			return
		}
		seen, err := a.exec(ctx, "pg_prepared_statements", d.a, "SELECT pg_backend_pid()::text, name, statement FROM pg_prepared_statements")
		var pe *pgconn.PgError
		denied = errors.As(err, &pe) && pe.Code == "42501"
		for _, r := range seen {
			if string(r[0]) == vpid {
				shared = vpid
			}
			if strings.Contains(string(r[2]), marker) {
				o.leak("saw the neighbour's prepared statement %s with its literals in pg_prepared_statements (server connection pid %s)", r[1], r[0])
			}
		}
		if err == nil && len(seen) == 0 {
			// No statement at all: which connection was it?
			if pid, err := a.exec(ctx, "pid", d.a, "SELECT pg_backend_pid()::text"); err == nil && len(pid) == 1 && string(pid[0][0]) == vpid {
				shared = vpid
			}
		}
		a.exec(ctx, "FETCH the neighbour's cursor", d.a, "FETCH ALL FROM "+isoTable+"_c")
		a.close()
	}
	switch {
	case len(o.leaks) > 0:
	case denied:
		o.blockedBy = strings.Join(dedupe(o.errs), "; ")
	case shared == "":
		o.skip = fmt.Sprintf("the attacker never got the server connection the neighbour's statement ran on (%d fresh sessions)", poolTries)
	default:
		o.blockedBy = fmt.Sprintf("no statement of the neighbour's on its server connection (pid %s) when the attacker used it; %s",
			shared, strings.Join(dedupe(o.errs), "; "))
	}
}

// shadow has the attacker create a temporary table with the tenant table's
// name (found before it in every session's search path), holding a row
// tagged as the neighbour's, and end its session; fresh sessions of the
// neighbour then read and write the tenant table. The neighbour must see
// none of the attacker's rows, and its write must reach the real table.
func shadow(ctx context.Context, d *isolation, o *outcome, create string) {
	planted := "planted:" + d.run
	a := d.attacker(ctx, o)
	if a == nil {
		return
	}
	rows, err := a.exec(ctx, "plant", d.a, fmt.Sprintf("%s AS SELECT %s::text AS tenant_id, 1 AS id, %s::text AS secret; SELECT pg_backend_pid()::text",
		create, quoteLit(d.v), quoteLit(planted)))
	a.close()
	if err != nil {
		return // refused: the verdict names what refused it
	}
	if len(rows) != 1 {
		o.fail = fmt.Errorf("plant: %d rows, want the server connection's pid", len(rows))
		return
	}
	apid := string(rows[0][0])
	reached := false
	admin := d.admin[d.home[d.v]]
	for i := 0; i < poolTries && !reached; i++ {
		v := d.session(ctx, o, d.v)
		if v == nil {
			return
		}
		got, err := v.exec(ctx, "neighbour reads", d.v, "SELECT pg_backend_pid()::text, secret FROM "+isoTable)
		for _, r := range got {
			if string(r[0]) == apid {
				reached = true
			}
			if string(r[1]) == planted {
				o.leak("the neighbour read a row the attacker planted in a temporary table shadowing %s (server connection pid %s)", isoTable, r[0])
			}
		}
		id := 200 + i
		wrote, err2 := v.exec(ctx, "neighbour writes", d.v, fmt.Sprintf("INSERT INTO %s VALUES (%s, %d, %s) RETURNING pg_backend_pid()::text",
			isoTable, quoteLit(d.v), id, quoteLit(d.secret(d.v, id))))
		v.close()
		if err != nil || err2 != nil {
			o.fail = fmt.Errorf("the neighbour's session: %v %v", err, err2)
			return
		}
		if len(wrote) == 1 && string(wrote[0][0]) == apid {
			reached = true
		}
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+isoTable+" WHERE tenant_id = $1 AND id = $2", d.v, id).Scan(&n); err != nil {
			o.fail = err
			return
		}
		if n != 1 {
			o.leak("the neighbour's INSERT went into the attacker's temporary table, not %s (server connection pid %s)", isoTable, wrote[0][0])
		}
	}
	if len(o.leaks) > 0 {
		return
	}
	if reached {
		o.blockedBy = fmt.Sprintf("the neighbour used the attacker's server connection (pid %s) with the temporary table gone", apid)
		return
	}
	// Not reached: was the connection closed, or just not handed out?
	deadline := time.Now().Add(3 * time.Second)
	for {
		var alive bool
		if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1::int)", apid).Scan(&alive); err != nil {
			o.fail = err
			return
		}
		if !alive {
			o.blockedBy = fmt.Sprintf("the router closed the attacker's server connection (pid %s) when its session ended", apid)
			return
		}
		if time.Now().After(deadline) {
			o.skip = fmt.Sprintf("the neighbour never got the attacker's server connection (pid %s, still open) in %d fresh sessions", apid, poolTries)
			return
		}
		select {
		case <-ctx.Done():
			o.fail = ctx.Err()
			return
		case <-time.After(20 * time.Millisecond): // a server process exits after its client closed: polling its state
		}
	}
}
