package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Row-level security on tenant tables.
//
// Every tenant table (see TenantTable) gets two policies, which limit it to
// the rows whose tenant column is the session's binding (bindingExpr, what
// shardline.current_tenant() returns):
//
//   - shardline_tenant, RESTRICTIVE, for every command, both USING (what a
//     statement sees) and WITH CHECK (what it may write). Restrictive
//     policies are ANDed with all others, so no policy a user adds can
//     widen a session's reach beyond its tenant;
//   - shardline_tenant_rows, PERMISSIVE and true, so that rows are visible
//     at all when the user adds no permissive policy of their own (with
//     none, RLS shows no rows).
//
// FORCE ROW LEVEL SECURITY makes them apply to the table's owner too.
// Superusers and BYPASSRLS roles skip RLS whatever the table says, so the
// router's server connections must use neither (docs/isolation.md).
// Without a binding, bindingExpr is NULL and a statement sees and writes
// no tenant rows.
//
// A table can opt out, explicitly and listed: a row in
// shardline.rls_opt_out names it and says why.

// Policy names on tenant tables.
const (
	PolicyName        = "shardline_tenant"
	PolicyDefaultName = "shardline_tenant_rows"
)

// bindingExpr is the session's binding as the policies read it: NULL when
// no tenant is bound, so that a statement then sees and writes no rows.
const bindingExpr = "nullif(pg_catalog.current_setting('shardline.tenant', true), '')"

// bindingSchemaSQL creates the shardline schema: the opt-out table, and
// current_tenant(), the binding for queries of the user's own (bindingExpr).
const bindingSchemaSQL = `
CREATE SCHEMA IF NOT EXISTS shardline;
CREATE TABLE IF NOT EXISTS shardline.rls_opt_out (
	table_schema name NOT NULL,
	table_name name NOT NULL,
	reason text NOT NULL CHECK (reason <> ''),
	PRIMARY KEY (table_schema, table_name));
CREATE OR REPLACE FUNCTION shardline.current_tenant() RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT ` + bindingExpr + ` $$;
GRANT USAGE ON SCHEMA shardline TO PUBLIC;
GRANT EXECUTE ON FUNCTION shardline.current_tenant() TO PUBLIC;
`

// TenantTableInfo is what the catalog says of one tenant table.
type TenantTableInfo struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Partition is set for a partition: RLS on its parent does not cover
	// statements that name the partition, so it needs its own policies.
	Partition bool `json:"partition,omitempty"`
	// RLS and Forced: row-level security enabled, and forced on the owner.
	RLS    bool `json:"rls"`
	Forced bool `json:"forced"`
	// Policy: the restrictive shardline_tenant policy is there, for every
	// command, with USING and WITH CHECK on the binding.
	Policy bool `json:"policy"`
	// PrimaryKeyLeads: the primary key's first column is the tenant
	// column. HasPrimaryKey is false for a table without one.
	HasPrimaryKey   bool `json:"has_primary_key"`
	PrimaryKeyLeads bool `json:"primary_key_leads"`
	// OptOut is the reason the table opted out of the policies, or "".
	OptOut string `json:"opt_out,omitempty"`
	// Owner is the table's owner. An owner can disable row-level security,
	// so a table the router's role (AppRole) created through the router is
	// a problem until apply gives it to the admin.
	Owner string `json:"owner"`

	columnType string
}

// Qualified is the table's name as SQL writes it.
func (t TenantTableInfo) Qualified() string {
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

// Protected reports whether the table's rows are limited to the binding's
// tenant: RLS enabled and forced, with the policy.
func (t TenantTableInfo) Protected() bool { return t.RLS && t.Forced && t.Policy }

// Problems lists what is wrong with the table, in words for a person; nil
// when nothing is. An opted-out table is not a problem (it is listed as
// such), but a missing primary key that leads with the tenant column is.
func (t TenantTableInfo) Problems(column string) []string {
	var p []string
	if t.OptOut == "" {
		if !t.RLS {
			p = append(p, "row-level security is not enabled")
		} else if !t.Forced {
			p = append(p, "row-level security is not forced on the table's owner")
		}
		if !t.Policy {
			p = append(p, "the "+PolicyName+" policy is missing or changed")
		}
	}
	if t.Owner == AppRole {
		p = append(p, "it is owned by "+AppRole+", the router's role, whose sessions could disable row-level security (schema apply gives it to the admin)")
	}
	switch {
	case !t.HasPrimaryKey:
		p = append(p, "it has no primary key (it must lead with "+column+")")
	case !t.PrimaryKeyLeads:
		p = append(p, "its primary key does not lead with "+column)
	}
	return p
}

// queryer runs a query: a *pgx.Conn or a pgx.Tx.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// TenantTables lists the tenant tables of the database q is connected to
// (ordinary and partitioned tables and partitions with column, outside
// the system schemas and Shardline's own), in schema and name order.
func TenantTables(ctx context.Context, q queryer, column string) ([]TenantTableInfo, error) {
	rows, err := q.Query(ctx, `
		SELECT n.nspname, c.relname, c.relispartition, c.relrowsecurity, c.relforcerowsecurity,
			format_type(a.atttypid, a.atttypmod),
			EXISTS (SELECT 1 FROM pg_policy p
				WHERE p.polrelid = c.oid AND p.polname = $2 AND NOT p.polpermissive AND p.polcmd = '*'
				  AND p.polroles = '{0}'
				  AND pg_get_expr(p.polqual, p.polrelid) LIKE '%current_setting(''shardline.tenant''::text, true)%'
				  AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%current_setting(''shardline.tenant''::text, true)%'),
			pk.conkey IS NOT NULL, coalesce(pk.conkey[1] = a.attnum, false),
			pg_get_userbyid(c.relowner)
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
		WHERE a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped
		  AND c.relkind IN ('r', 'p')
		  AND n.nspname NOT IN ('information_schema', 'shardline') AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY n.nspname, c.relname`, column, PolicyName)
	if err != nil {
		return nil, fmt.Errorf("list tenant tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TenantTableInfo, error) {
		var t TenantTableInfo
		err := r.Scan(&t.Schema, &t.Name, &t.Partition, &t.RLS, &t.Forced, &t.columnType, &t.Policy,
			&t.HasPrimaryKey, &t.PrimaryKeyLeads, &t.Owner)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenant tables: %w", err)
	}
	optOuts, err := tableOptOuts(ctx, q)
	if err != nil {
		return nil, err
	}
	for i := range tables {
		tables[i].OptOut = optOuts[[2]string{tables[i].Schema, tables[i].Name}]
	}
	return tables, nil
}

// tableOptOuts reads shardline.rls_opt_out, if it exists yet.
func tableOptOuts(ctx context.Context, q queryer) (map[[2]string]string, error) {
	rows, err := q.Query(ctx, `SELECT to_regclass('shardline.rls_opt_out') IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	exists, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil || !exists {
		return nil, err
	}
	out := map[[2]string]string{}
	rows, err = q.Query(ctx, `SELECT table_schema, table_name, reason FROM shardline.rls_opt_out`)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	var schema, name, reason string
	_, err = pgx.ForEachRow(rows, []any{&schema, &name, &reason}, func() error {
		out[[2]string{schema, name}] = reason
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	return out, nil
}

// policySQL returns the statements that give t its policies, RLS and FORCE.
func policySQL(t TenantTableInfo, column string) string {
	col := pgx.Identifier{column}.Sanitize()
	// The binding as an expression, not a call of current_tenant(): a
	// stable function call is evaluated once per scan, and inlining the
	// SQL function in a subquery cost a fifth of the TPS of a workload in
	// the simple protocol, which plans every statement (docs/isolation.md).
	// Cast to the column's type so an index on the column serves it.
	expr := fmt.Sprintf("%s = %s::%s", col, bindingExpr, t.columnType)
	tbl := t.Qualified()
	var sb strings.Builder
	fmt.Fprintf(&sb, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY;\n", tbl)
	fmt.Fprintf(&sb, "ALTER TABLE %s FORCE ROW LEVEL SECURITY;\n", tbl)
	// The permissive policy is true: the restrictive one does the
	// limiting, once per statement (two copies of the comparison cost the
	// planner twice).
	for _, p := range []struct{ name, kind, expr string }{{PolicyName, "RESTRICTIVE", expr}, {PolicyDefaultName, "PERMISSIVE", "true"}} {
		fmt.Fprintf(&sb, "DROP POLICY IF EXISTS %s ON %s;\n", p.name, tbl)
		fmt.Fprintf(&sb, "CREATE POLICY %s ON %s AS %s FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s);\n",
			p.name, tbl, p.kind, p.expr, p.expr)
	}
	return sb.String()
}

// ownerSQL gives t, which AppRole owns, to the admin applying the schema,
// and AppRole back the rows' privileges (not TRUNCATE, TRIGGER or
// REFERENCES).
func ownerSQL(t TenantTableInfo) string {
	return fmt.Sprintf("ALTER TABLE %[1]s OWNER TO CURRENT_USER;\nGRANT SELECT, INSERT, UPDATE, DELETE ON %[1]s TO %[2]s;\n", t.Qualified(), AppRole)
}

// ApplyTenantSchema runs sql as ApplySchema does, in one transaction with
// what row-level security needs: before sql, the shardline schema (the
// binding function, the opt-out table); after it, RLS, FORCE and the
// policies on every tenant table that lacks them and did not opt out. It
// returns the tenant tables as they are after the change.
func ApplyTenantSchema(ctx context.Context, dsn, sql, column string) ([]TenantTableInfo, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("apply schema: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply schema: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // after Commit, does nothing
	if _, err := tx.Exec(ctx, bindingSchemaSQL); err != nil {
		return nil, fmt.Errorf("apply schema: shardline schema: %w", err)
	}
	if strings.TrimSpace(sql) != "" {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("apply schema: %w", err)
		}
	}
	tables, err := TenantTables(ctx, tx, column)
	if err != nil {
		return nil, fmt.Errorf("apply schema: %w", err)
	}
	var fix strings.Builder
	for _, t := range tables {
		if t.Owner == AppRole {
			fix.WriteString(ownerSQL(t))
		}
		if t.OptOut == "" && !t.Protected() {
			fix.WriteString(policySQL(t, column))
		}
	}
	definer, err := definerFixes(ctx, tx, tables)
	if err != nil {
		return nil, fmt.Errorf("apply schema: %w", err)
	}
	fix.WriteString(definer)
	if fix.Len() > 0 {
		if _, err := tx.Exec(ctx, fix.String()); err != nil {
			return nil, fmt.Errorf("apply schema: row-level security: %w", err)
		}
		if tables, err = TenantTables(ctx, tx, column); err != nil {
			return nil, fmt.Errorf("apply schema: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("apply schema: commit: %w", err)
	}
	return tables, nil
}

// CheckTenantSchema lists the tenant tables of the database dsn names, as
// TenantTables does, changing nothing.
func CheckTenantSchema(ctx context.Context, dsn, column string) ([]TenantTableInfo, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("check schema: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return TenantTables(ctx, conn, column)
}

// SchemaAdmin applies schema changes and checks tenant tables on shard
// primaries, with row-level security on every tenant table (the manager's
// SchemaApplier and TenantSchema).
type SchemaAdmin struct {
	// Column is the tenant column; "" for DefaultTenantColumn.
	Column string
}

// ApplySchema runs sql with ApplyTenantSchema.
func (a SchemaAdmin) ApplySchema(ctx context.Context, dsn, sql string) error {
	_, err := ApplyTenantSchema(ctx, dsn, sql, a.column())
	return err
}

// ApplyTenantSchema is the package's ApplyTenantSchema.
func (SchemaAdmin) ApplyTenantSchema(ctx context.Context, dsn, sql, column string) ([]TenantTableInfo, error) {
	return ApplyTenantSchema(ctx, dsn, sql, column)
}

// CheckTenantSchema is the package's CheckTenantSchema.
func (SchemaAdmin) CheckTenantSchema(ctx context.Context, dsn, column string) ([]TenantTableInfo, error) {
	return CheckTenantSchema(ctx, dsn, column)
}

func (a SchemaAdmin) column() string {
	if a.Column == "" {
		return DefaultTenantColumn
	}
	return a.Column
}
