package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultTenantColumn is the tenant column of tenant tables: every table
// with a column of this name holds rows of the tenants it names.
const DefaultTenantColumn = "tenant_id"

// TenantTable returns the first table (schema-qualified, in schema and
// name order) of the database dsn names that holds a row whose column
// equals tenant, or "" when no table does. The tenant tables are the
// ordinary and partitioned tables, outside the system schemas, that have
// column; partitions are covered by their parent. A tenant id that the
// column's type cannot hold (text in an integer column) has no rows in it.
//
// It asks one EXISTS query per table, so it costs an index probe per
// table when the tenant column leads an index, as it leads the primary key
// of a Shardline table.
func TenantTable(ctx context.Context, dsn, column, tenant string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("find tenant rows: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, format_type(a.atttypid, NULL)
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped
		  AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY n.nspname, c.relname`, column)
	if err != nil {
		return "", fmt.Errorf("find tenant rows: list tables: %w", err)
	}
	type table struct{ schema, name, typ string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		err := r.Scan(&t.schema, &t.name, &t.typ)
		return t, err
	})
	if err != nil {
		return "", fmt.Errorf("find tenant rows: list tables: %w", err)
	}
	for _, t := range tables {
		// format_type gives the type as SQL spells it (quoted when needed).
		q := fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s = $1::text::%s)",
			pgx.Identifier{t.schema, t.name}.Sanitize(), pgx.Identifier{column}.Sanitize(), t.typ)
		var found bool
		if err := conn.QueryRow(ctx, q, tenant).Scan(&found); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code[:2] == "22" {
				continue // the column's type cannot hold this tenant id
			}
			return "", fmt.Errorf("find tenant rows in %s.%s: %w", t.schema, t.name, err)
		}
		if found {
			return t.schema + "." + t.name, nil
		}
	}
	return "", nil
}
