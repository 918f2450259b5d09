package shardmgr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/postgres"
)

// ShardQuerier runs an operator's query on a shard member as the admin,
// across tenants: read-only unless write (postgres.SchemaAdmin does).
type ShardQuerier interface {
	AdminQuery(ctx context.Context, dsn, sql string, write bool, limit int) (postgres.QueryResult, error)
}

// Errors of Query.
var (
	// ErrNoQuery: the manager's SchemaApplier cannot run queries.
	ErrNoQuery = errors.New("shardmgr: the schema applier cannot run queries")
	// ErrEmptyQuery: no SQL to run.
	ErrEmptyQuery = errors.New("shardmgr: query SQL is empty")
	// ErrQueryFailed wraps what the server said of a failed query.
	ErrQueryFailed = errors.New("shardmgr: query failed")
)

// QueryLimit is the most rows a query returns.
const QueryLimit = 1000

// Query runs sql on shard's primary as the admin, which row-level security
// does not bind: the operator's read across tenants. It is one statement
// in a read-only transaction unless write. Errors wrap
// shardline.ErrShardNotFound, ErrEmptyQuery, ErrNoQuery or
// ErrQueryFailed.
func (m *Manager) Query(ctx context.Context, shard shardline.ShardID, sql string, write bool) (postgres.QueryResult, error) {
	q, ok := m.schema.(ShardQuerier)
	if !ok {
		return postgres.QueryResult{}, ErrNoQuery
	}
	if strings.TrimSpace(sql) == "" {
		return postgres.QueryResult{}, ErrEmptyQuery
	}
	p, err := m.store.Load(ctx)
	if err != nil {
		return postgres.QueryResult{}, fmt.Errorf("query: %w", err)
	}
	s, ok := p.Shards[shard]
	if !ok {
		return postgres.QueryResult{}, shardline.ShardNotFound(shard)
	}
	m.logger.Info("operator query", "shard", shard, "write", write, "sql", truncate(sql, 200))
	res, err := q.AdminQuery(ctx, s.Primary.DSN, sql, write, QueryLimit)
	if err != nil {
		return postgres.QueryResult{}, fmt.Errorf("%w on shard %s: %v", ErrQueryFailed, shard, err)
	}
	return res, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
