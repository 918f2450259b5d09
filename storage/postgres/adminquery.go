package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Operators read across tenants through the admin: the admin API's query
// of one shard (shardline sql) runs here, as the member DSN's user, which
// row-level security does not bind. It is read-only unless asked: one
// statement in a READ ONLY transaction, so a write fails with 25006.

// QueryResult is what an admin query returned: the columns and rows of its
// last statement that returned rows, as text (NULL as nil).
type QueryResult struct {
	Columns   []string    `json:"columns"`
	Rows      [][]*string `json:"rows"`
	Truncated bool        `json:"truncated,omitempty"` // more than the limit's rows
	Tag       string      `json:"tag"`                 // the last statement's command tag
}

// AdminQueryTimeout bounds an admin query (statement_timeout).
const AdminQueryTimeout = 30 * time.Second

// AdminQuery runs sql on the server dsn names in one transaction, READ
// ONLY unless write, keeping at most limit rows. A read-only query is rolled
// back; a write commits.
func AdminQuery(ctx context.Context, dsn, sql string, write bool, limit int) (QueryResult, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return QueryResult{}, fmt.Errorf("query: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	mode := pgx.ReadOnly
	if write {
		mode = pgx.ReadWrite
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: mode})
	if err != nil {
		return QueryResult{}, fmt.Errorf("query: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // after Commit, does nothing
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", AdminQueryTimeout.Milliseconds())); err != nil {
		return QueryResult{}, fmt.Errorf("query: %w", err)
	}
	var results []*pgconn.Result
	if write {
		if results, err = conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			return QueryResult{}, err
		}
	} else {
		// One statement, in the extended protocol, which takes no more: a
		// COMMIT or SET after a first statement cannot end the read-only
		// transaction and go on writing.
		r := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		if r.Err != nil {
			return QueryResult{}, r.Err
		}
		results = []*pgconn.Result{r}
	}
	var out QueryResult
	for _, r := range results {
		out.Tag = r.CommandTag.String()
		if len(r.FieldDescriptions) == 0 {
			continue
		}
		out.Columns = out.Columns[:0]
		for _, f := range r.FieldDescriptions {
			out.Columns = append(out.Columns, f.Name)
		}
		out.Rows, out.Truncated = nil, len(r.Rows) > limit
		for _, row := range r.Rows[:min(len(r.Rows), limit)] {
			vals := make([]*string, len(row))
			for i, v := range row {
				if v != nil {
					s := string(v)
					vals[i] = &s
				}
			}
			out.Rows = append(out.Rows, vals)
		}
	}
	if write {
		if err := tx.Commit(ctx); err != nil {
			return QueryResult{}, fmt.Errorf("query: commit: %w", err)
		}
	}
	return out, nil
}

// AdminQuery is the package's AdminQuery (the manager's ShardQuerier).
func (SchemaAdmin) AdminQuery(ctx context.Context, dsn, sql string, write bool, limit int) (QueryResult, error) {
	return AdminQuery(ctx, dsn, sql, write, limit)
}
