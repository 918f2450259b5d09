package chaos

import (
	"context"
	"fmt"
	"strings"
)

// attack is one way a neighbour may try to reach other tenants' rows. run
// acts as the attacker (and, for some, as a victim) through the router and
// records what its sessions saw in o; the drill then checks the shards'
// rows itself.
type attack struct {
	name string
	what string
	// ok says what blocked the attack when none of its statements failed
	// and nothing leaked.
	ok string
	// writers are tenants besides the attacker whose rows the attack may
	// change legitimately (a victim's own write in it).
	writers func(d *isolation) []string
	run     func(ctx context.Context, d *isolation, o *outcome)
}

const rlsOwnRows = "row-level security: only the attacker's own rows"

// tx runs stmts in one transaction as step label, stopping at the first
// error (and rolling back); the session may see rows of tenant as only.
func (c *client) tx(ctx context.Context, label, as string, stmts ...string) error {
	if c == nil {
		return nil
	}
	if _, err := c.exec(ctx, label+" BEGIN", as, "BEGIN"); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := c.exec(ctx, label, as, s); err != nil {
			c.conn.Exec(ctx, "ROLLBACK").ReadAll()
			return err
		}
	}
	_, err := c.exec(ctx, label+" COMMIT", as, "COMMIT")
	return err
}

// attacker opens the attacker's session; nil (with o.fail set) when it
// cannot connect.
func (d *isolation) attacker(ctx context.Context, o *outcome) *client { return d.session(ctx, o, d.a) }

// each runs every variant in a fresh attacker session.
func (d *isolation) each(ctx context.Context, o *outcome, variants map[string]func(c *client)) {
	for _, name := range sortedKeys(variants) {
		c := d.attacker(ctx, o)
		if c == nil {
			return
		}
		variants[name](c)
		c.close()
	}
}

// remote returns the remote tenant, or the neighbour with one shard.
func (d *isolation) remote() string {
	if d.w != "" {
		return d.w
	}
	return d.v
}

func attacks() []attack {
	t := isoTable
	sel := "SELECT tenant_id, id, secret FROM " + t
	return []attack{
		{name: "no-where-select", what: "SELECT * without WHERE", ok: rlsOwnRows,
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.exec(ctx, "SELECT", d.a, sel)
				c.exec(ctx, "SELECT count(*) of others", d.a, "SELECT string_agg(secret, ',') FROM "+t+" WHERE tenant_id <> "+quoteLit(d.a))
			}},
		{name: "no-where-write", what: "UPDATE and DELETE without WHERE", ok: "row-level security: changed only the attacker's rows",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.exec(ctx, "UPDATE", d.a, "UPDATE "+t+" SET secret = "+quoteLit(d.forged()))
				c.exec(ctx, "DELETE", d.a, "DELETE FROM "+t)
			}},
		{name: "insert-other-tenant", what: "INSERT rows tagged with the neighbour's and the remote tenant's ids",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				for _, v := range []string{d.v, d.remote()} {
					c.exec(ctx, "INSERT as "+d.label(v), d.a, fmt.Sprintf("INSERT INTO %s VALUES (%s, 100, %s)", t, quoteLit(v), quoteLit(d.forged())))
				}
				c.exec(ctx, "INSERT ON CONFLICT", d.a, fmt.Sprintf("INSERT INTO %s VALUES (%s, 1, %s) ON CONFLICT (tenant_id, id) DO UPDATE SET secret = excluded.secret RETURNING *",
					t, quoteLit(d.v), quoteLit(d.forged())))
			}},
		{name: "update-other-tenant", what: "UPDATE the neighbour's rows by id; re-tag own rows as another tenant's", ok: rlsOwnRows,
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.exec(ctx, "UPDATE neighbour", d.a, fmt.Sprintf("UPDATE %s SET secret = %s WHERE tenant_id = %s RETURNING *", t, quoteLit(d.forged()), quoteLit(d.v)))
				for _, v := range []string{d.v, d.remote()} {
					c.exec(ctx, "re-tag as "+d.label(v), d.a, fmt.Sprintf("UPDATE %s SET tenant_id = %s WHERE tenant_id = %s AND id = 1", t, quoteLit(v), quoteLit(d.a)))
				}
			}},
		{name: "comment-in-transaction", what: "a comment naming another tenant inside the attacker's transaction",
			writers: func(d *isolation) []string { return []string{d.remote()} },
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				w := d.remote()
				c.tx(ctx, "comment", d.a, sel,
					fmt.Sprintf("INSERT INTO %s VALUES (%s, 101, %s) /* tenant='%s' */", t, quoteLit(w), quoteLit(d.forged()), w),
					fmt.Sprintf("%s /* tenant='%s' */", sel, w))
			}},
		{name: "set-tenant-in-transaction", what: "SET shardline.tenant (and SET LOCAL) inside the attacker's transaction",
			writers: func(d *isolation) []string { return []string{d.remote()} },
			run: func(ctx context.Context, d *isolation, o *outcome) {
				w := d.remote()
				d.each(ctx, o, map[string]func(*client){
					"SET": func(c *client) {
						c.tx(ctx, "SET in tx", d.a, sel, "SET shardline.tenant = "+quoteLit(w),
							fmt.Sprintf("INSERT INTO %s VALUES (%s, 102, %s)", t, quoteLit(w), quoteLit(d.forged())), sel)
					},
					"SET LOCAL": func(c *client) {
						c.tx(ctx, "SET LOCAL in tx", d.a, sel, "SET LOCAL shardline.tenant = "+quoteLit(w), sel)
					},
				})
			}},
		{name: "switch-around-transactions", what: "SET shardline.tenant between transactions; a switch in a multi-statement query",
			ok: "the binding follows each switch: every statement saw only the tenant it ran as",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.tx(ctx, "own transaction", d.a, sel, fmt.Sprintf("INSERT INTO %s VALUES (%s, 103, %s)", t, quoteLit(d.a), quoteLit(d.forged())))
				if _, err := c.exec(ctx, "switch to neighbour", d.a, "SET shardline.tenant = "+quoteLit(d.v)); err == nil {
					c.exec(ctx, "read after switch", d.v, sel)
					c.exec(ctx, "switch back", d.v, "SET shardline.tenant = "+quoteLit(d.a))
				}
				c.exec(ctx, "read after switching back", d.a, sel)
				c.exec(ctx, "switch in a multi-statement query", d.a, "SET shardline.tenant = "+quoteLit(d.v)+"; "+sel)
				c.exec(ctx, "read after it", d.a, sel)
			}},
		{name: "set_config-direct", what: "set_config('shardline.tenant', neighbour), for the transaction and the session",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				d.each(ctx, o, map[string]func(*client){
					"local": func(c *client) {
						c.tx(ctx, "set_config local", d.a, "SELECT set_config('shardline.tenant', "+quoteLit(d.v)+", true)", sel)
					},
					"session": func(c *client) {
						c.exec(ctx, "set_config session", d.a, "SELECT set_config('shardline.tenant', "+quoteLit(d.v)+", false)")
						c.exec(ctx, "read after set_config", d.a, sel)
					},
				})
			}},
		{name: "set_config-concatenated", what: "set_config with the name built by concatenation, then read and write",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				d.each(ctx, o, map[string]func(*client){
					"neighbour": func(c *client) {
						c.tx(ctx, "set_config('shard'||'line.tenant')", d.a, "SELECT set_config('shard'||'line.tenant', "+quoteLit(d.v)+", true)", sel,
							fmt.Sprintf("INSERT INTO %s VALUES (%s, 104, %s)", t, quoteLit(d.v), quoteLit(d.forged())))
					},
					"remote": func(c *client) {
						c.tx(ctx, "set_config('shard'||'line.tenant') remote", d.a, "SELECT set_config('shard'||'line.tenant', "+quoteLit(d.remote())+", true)",
							fmt.Sprintf("INSERT INTO %s VALUES (%s, 104, %s)", t, quoteLit(d.remote()), quoteLit(d.forged())))
					},
				})
			}},
		{name: "set_config-do-block", what: "set_config inside a DO block (literal and concatenated name)",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				d.each(ctx, o, map[string]func(*client){
					"literal": func(c *client) {
						c.tx(ctx, "DO literal", d.a, "DO $$ BEGIN PERFORM set_config('shardline.tenant', "+quoteLit(d.v)+", true); END $$", sel)
					},
					"concatenated": func(c *client) {
						c.tx(ctx, "DO concat()", d.a, "DO $$ BEGIN PERFORM set_config(concat('shard', 'line.tenant'), "+quoteLit(d.v)+", true); END $$", sel)
					},
				})
			}},
		{name: "set_config-function-set", what: "a pg_temp function with SET shardline.tenant in its definition",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				fn := func(name string) string {
					return fmt.Sprintf("CREATE FUNCTION pg_temp.%s_f() RETURNS SETOF %s LANGUAGE sql SET %s = %s AS $$ SELECT * FROM public.%s $$",
						t, t, name, quoteLit(d.v), t)
				}
				d.each(ctx, o, map[string]func(*client){
					"literal": func(c *client) {
						c.tx(ctx, "function SET shardline.tenant", d.a, fn("shardline.tenant"), "SELECT * FROM pg_temp."+t+"_f()")
					},
					"quoted": func(c *client) {
						c.tx(ctx, `function SET "shardline"."tenant"`, d.a, fn(`"shardline"."tenant"`), "SELECT * FROM pg_temp."+t+"_f()")
					},
				})
			}},
		{name: "set-local-quoted", what: `SET LOCAL "shardline"."tenant" and SET SESSION "shardline".tenant`,
			run: func(ctx context.Context, d *isolation, o *outcome) {
				d.each(ctx, o, map[string]func(*client){
					"local": func(c *client) {
						c.tx(ctx, `SET LOCAL "shardline"."tenant"`, d.a, `SET LOCAL "shardline"."tenant" = `+quoteLit(d.v), sel)
					},
					"session": func(c *client) {
						c.tx(ctx, `SET SESSION "shardline".tenant`, d.a, `SET SESSION "shardline".tenant = `+quoteLit(d.v), sel)
					},
				})
			}},
		{name: "invoker-function-dynamic-sql", what: "a SECURITY INVOKER plpgsql function rebinding with dynamic SQL; creating one outside pg_temp",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				body := fmt.Sprintf(`RETURNS SETOF text LANGUAGE plpgsql AS $$ BEGIN
					EXECUTE format('SELECT set_config(%%L, %%L, true)', 'shard' || 'line.tenant', v);
					RETURN QUERY EXECUTE 'SELECT secret FROM public.%s'; END $$`, t)
				d.each(ctx, o, map[string]func(*client){
					"pg_temp": func(c *client) {
						c.tx(ctx, "pg_temp function", d.a, "CREATE FUNCTION pg_temp."+t+"_g(v text) "+body,
							"SELECT * FROM pg_temp."+t+"_g("+quoteLit(d.v)+")")
					},
					"public": func(c *client) {
						c.tx(ctx, "CREATE FUNCTION in public", d.a, "CREATE FUNCTION public."+t+"_g(v text) "+body,
							"SELECT * FROM public."+t+"_g("+quoteLit(d.v)+")")
					},
					"schemas": func(c *client) {
						rows, err := c.exec(ctx, "schemas with CREATE", d.a,
							"SELECT nspname FROM pg_namespace WHERE has_schema_privilege(oid, 'CREATE') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'")
						if err == nil && len(rows) > 0 {
							var names []string
							for _, r := range rows {
								names = append(names, string(r[0]))
							}
							o.errs = append(o.errs, "note: the app role may CREATE in "+strings.Join(names, ", "))
						}
					},
				})
			}},
		{name: "definer-function-attacker", what: "a SECURITY DEFINER pg_temp function of the attacker's reading the whole table",
			ok: "row-level security: the function runs as the app role, which the policies bind",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.tx(ctx, "pg_temp SECURITY DEFINER", d.a,
					fmt.Sprintf("CREATE FUNCTION pg_temp.%s_h() RETURNS SETOF %s LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RETURN QUERY EXECUTE 'SELECT * FROM public.%s'; END $$", t, t, t),
					"SELECT * FROM pg_temp."+t+"_h()")
			}},
		{name: "definer-function-admin", what: "a SECURITY DEFINER function made by schema apply (owned by the admin), called by the attacker",
			ok: "row-level security: the function's owner is bound by the policies",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.exec(ctx, "admin's SECURITY DEFINER function", d.a, "SELECT * FROM "+t+"_lookup(1)")
			}},
		{name: "view-owner-rights", what: "a view made by schema apply without security_invoker (runs as its owner)", ok: rlsOwnRows,
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.exec(ctx, "owner's-rights view", d.a, "SELECT * FROM "+t+"_owner_view")
			}},
		{name: "view-invoker-rights", what: "a security_invoker view made by schema apply; a pg_temp view of the attacker's", ok: rlsOwnRows,
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				c.exec(ctx, "security_invoker view", d.a, "SELECT * FROM "+t+"_invoker_view")
				c.tx(ctx, "pg_temp view", d.a, "CREATE VIEW pg_temp."+t+"_v AS SELECT * FROM public."+t, "SELECT * FROM pg_temp."+t+"_v")
			}},
		{name: "reset-discard", what: "RESET ALL, DISCARD ALL, RESET shardline.tenant, SET TO DEFAULT, then read",
			ok: "reading after a reset saw only the attacker's rows (or none)",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				d.each(ctx, o, map[string]func(*client){
					"RESET ALL": func(c *client) {
						c.exec(ctx, "RESET ALL", d.a, "RESET ALL")
						c.exec(ctx, "read after RESET ALL", d.a, sel)
					},
					"DISCARD ALL": func(c *client) {
						c.exec(ctx, "DISCARD ALL", d.a, "DISCARD ALL")
						c.exec(ctx, "read after DISCARD ALL", d.a, sel)
					},
					"in transaction": func(c *client) { c.tx(ctx, "RESET ALL in a transaction", d.a, sel, "RESET ALL", sel) },
					"RESET name": func(c *client) {
						c.tx(ctx, `RESET "shardline"."tenant" in a transaction`, d.a, sel, `RESET "shardline"."tenant"`, sel)
					},
					"DEFAULT": func(c *client) {
						c.tx(ctx, `SET "shardline".tenant TO DEFAULT in a transaction`, d.a, sel, `SET "shardline".tenant TO DEFAULT`, sel)
					},
				})
			}},
		{name: "set-role", what: "SET ROLE / SET SESSION AUTHORIZATION / set_config('role') to every superuser or BYPASSRLS role",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				rows, err := c.exec(ctx, "list privileged roles", d.a, "SELECT rolname FROM pg_roles WHERE rolsuper OR rolbypassrls ORDER BY 1")
				c.close()
				if err != nil {
					return
				}
				for _, r := range rows {
					role := quoteIdent(string(r[0]))
					d.each(ctx, o, map[string]func(*client){
						"role": func(c *client) { c.tx(ctx, "SET ROLE "+role, d.a, "SET ROLE "+role, sel) },
						"auth": func(c *client) {
							c.tx(ctx, "SET SESSION AUTHORIZATION "+role, d.a, "SET SESSION AUTHORIZATION "+role, sel)
						},
						"set_config": func(c *client) {
							c.tx(ctx, "set_config('role', "+role+")", d.a, "SELECT set_config('role', "+quoteLit(string(r[0]))+", true)", sel)
						},
					})
				}
			}},
		{name: "prepared-across-tenants", what: "a statement prepared (protocol and SQL PREPARE, generic plan) under the attacker, executed after switching to the neighbour",
			ok:  "plans are checked at execution: each run saw only the tenant bound then",
			run: func(ctx context.Context, d *isolation, o *outcome) { preparedAcrossTenants(ctx, d, o) }},
		{name: "prepared-of-another-session", what: "reading the neighbour's prepared statements (and its WITH HOLD cursor) on the pooled server connections",
			run: func(ctx context.Context, d *isolation, o *outcome) { otherSessionsStatements(ctx, d, o) }},
		{name: "copy-out", what: "COPY table TO STDOUT, COPY (SELECT ...) TO STDOUT", ok: rlsOwnRows,
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				for _, q := range []string{"COPY " + t + " TO STDOUT", "COPY (SELECT * FROM " + t + ") TO STDOUT"} {
					var b strings.Builder
					_, err := c.conn.CopyTo(ctx, &b, q)
					c.observe(q, d.a, [][][]byte{{[]byte(b.String())}}, err)
				}
			}},
		{name: "copy-in", what: "COPY table FROM STDIN with rows tagged with other tenants' ids",
			run: func(ctx context.Context, d *isolation, o *outcome) {
				c := d.attacker(ctx, o)
				defer c.close()
				data := fmt.Sprintf("%s\t105\t%s\n%s\t105\t%s\n", d.v, d.forged(), d.remote(), d.forged())
				_, err := c.conn.CopyFrom(ctx, strings.NewReader(data), "COPY "+t+" FROM STDIN")
				c.observe("COPY FROM STDIN", d.a, nil, err)
			}},
		{name: "temp-table-pinned", what: "CREATE TEMP TABLE shadowing the tenant table, then the neighbour's session",
			writers: func(d *isolation) []string { return []string{d.v} },
			run: func(ctx context.Context, d *isolation, o *outcome) {
				shadow(ctx, d, o, "CREATE TEMP TABLE "+t)
			}},
		{name: "temp-table-unpinned", what: "CREATE TABLE pg_temp.<table> shadowing the tenant table, then the neighbour's session",
			writers: func(d *isolation) []string { return []string{d.v} },
			run: func(ctx context.Context, d *isolation, o *outcome) {
				shadow(ctx, d, o, "CREATE TABLE pg_temp."+t)
			}},
	}
}
