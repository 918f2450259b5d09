package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Objects that read tenant tables with their owner's rights. A view runs
// with its owner's rights unless it is security_invoker, and a SECURITY
// DEFINER function with its owner's: when the owner is a superuser or
// BYPASSRLS (the admin applying the schema is), row-level security does not
// apply, and any tenant's session reads every tenant's rows through them
// (shardline drill isolation found both). Schema apply therefore
//
//   - makes every view over a tenant table whose owner bypasses row-level
//     security security_invoker, so the policies bind the session that
//     reads it;
//   - takes SELECT on such a materialized view (its rows are every
//     tenant's, materialized by the owner) from PUBLIC and AppRole;
//   - takes EXECUTE on SECURITY DEFINER functions whose owner bypasses
//     row-level security from PUBLIC and AppRole: what they read cannot be
//     told from the catalog.

// definerFixes returns the statements that make tables' dependent views and
// the database's definer functions safe, as above; "" when none is needed.
func definerFixes(ctx context.Context, q queryer, tables []TenantTableInfo) (string, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Qualified()
	}
	grantees := "PUBLIC"
	rows, err := q.Query(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, AppRole)
	if err != nil {
		return "", fmt.Errorf("definer objects: %w", err)
	}
	if ok, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool]); err != nil {
		return "", fmt.Errorf("definer objects: %w", err)
	} else if ok {
		grantees += ", " + AppRole
	}
	var sb strings.Builder
	rows, err = q.Query(ctx, `
		SELECT DISTINCT v.relkind, format('%I.%I', vn.nspname, v.relname)
		FROM pg_depend d
		JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
		JOIN pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
		JOIN pg_namespace vn ON vn.oid = v.relnamespace
		JOIN pg_roles o ON o.oid = v.relowner
		WHERE d.refclassid = 'pg_class'::regclass
		  AND d.refobjid IN (SELECT unnest($1::text[])::regclass)
		  AND (o.rolsuper OR o.rolbypassrls)
		  AND NOT coalesce(v.reloptions @> '{security_invoker=true}', false)`, names)
	if err != nil {
		return "", fmt.Errorf("definer views: %w", err)
	}
	var kind, name string
	if _, err := pgx.ForEachRow(rows, []any{&kind, &name}, func() error {
		if kind == "v" {
			fmt.Fprintf(&sb, "ALTER VIEW %s SET (security_invoker = true);\n", name)
		} else {
			fmt.Fprintf(&sb, "REVOKE SELECT ON %s FROM %s;\n", name, grantees)
		}
		return nil
	}); err != nil {
		return "", fmt.Errorf("definer views: %w", err)
	}
	rows, err = q.Query(ctx, `
		SELECT p.oid::regprocedure::text
		FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		JOIN pg_roles o ON o.oid = p.proowner
		WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
		  AND n.nspname NOT IN ('information_schema', 'shardline') AND n.nspname NOT LIKE 'pg\_%'`)
	if err != nil {
		return "", fmt.Errorf("definer functions: %w", err)
	}
	var fn string
	if _, err := pgx.ForEachRow(rows, []any{&fn}, func() error {
		fmt.Fprintf(&sb, "REVOKE EXECUTE ON FUNCTION %s FROM %s;\n", fn, grantees)
		return nil
	}); err != nil {
		return "", fmt.Errorf("definer functions: %w", err)
	}
	return sb.String(), nil
}
