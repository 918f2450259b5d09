package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ApplySchema runs sql, which may hold many statements separated by
// semicolons, in one transaction on the server that dsn names. Either every
// statement takes effect or none does: on any error the transaction is rolled
// back and the error, which wraps the server's *pgconn.PgError when there is
// one, is returned. sql must not hold its own BEGIN, COMMIT or ROLLBACK, nor
// statements that cannot run in a transaction block (CREATE DATABASE,
// VACUUM, CREATE INDEX CONCURRENTLY).
func ApplySchema(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("apply schema: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("apply schema: begin: %w", err)
	}
	// Exec without arguments uses the simple query protocol, so a script of
	// many statements is sent as one message and runs inside tx.
	if _, err := tx.Exec(ctx, sql); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("apply schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("apply schema: commit: %w", err)
	}
	return nil
}
