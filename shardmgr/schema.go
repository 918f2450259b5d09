package shardmgr

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shardline/shardline"
)

// SchemaApplier runs a SQL script in one transaction on the PostgreSQL
// server dsn names: all of it takes effect or none of it does.
type SchemaApplier interface {
	ApplySchema(ctx context.Context, dsn, sql string) error
}

// SchemaApplierFunc adapts a function, such as postgres.ApplySchema, to
// SchemaApplier.
type SchemaApplierFunc func(ctx context.Context, dsn, sql string) error

// ApplySchema calls f.
func (f SchemaApplierFunc) ApplySchema(ctx context.Context, dsn, sql string) error {
	return f(ctx, dsn, sql)
}

var _ SchemaApplier = SchemaApplierFunc(nil)

// SchemaResult is the outcome of a schema change on one shard.
type SchemaResult struct {
	Shard shardline.ShardID
	// OK is true when the change committed on the shard's primary.
	OK bool
	// Error says why it did not; "" when OK.
	Error string
}

// ApplySchema runs sql on every shard's primary, one transaction per shard,
// one shard at a time in shard id order. It stops at the first shard that
// fails, so a bad script fails once instead of on every shard; the results
// of the shards after it say they were not run. The shards before it keep
// the change: the results tell which.
//
// The error is non-nil only when nothing was tried: it wraps ErrEmptySchema
// or shardline.ErrNoPlacement, or reports that etcd could not be read.
func (m *Manager) ApplySchema(ctx context.Context, sql string) ([]SchemaResult, error) {
	if strings.TrimSpace(sql) == "" {
		return nil, ErrEmptySchema
	}
	p, err := m.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply schema: %w", err)
	}
	ids := p.ShardIDs()
	results := make([]SchemaResult, len(ids))
	skip := "" // why the remaining shards are not run
	for i, id := range ids {
		results[i].Shard = id
		if skip == "" && ctx.Err() != nil {
			skip = fmt.Sprintf("not run: %v", ctx.Err())
		}
		if skip != "" {
			results[i].Error = skip
			continue
		}
		start := time.Now()
		err := m.schema.ApplySchema(ctx, p.Shards[id].Primary.DSN, sql)
		log := m.logger.With("shard", id, "took", time.Since(start).Round(time.Millisecond))
		if err != nil {
			results[i].Error = err.Error()
			skip = fmt.Sprintf("not run: shard %s failed first", id)
			log.Warn("schema change failed", "err", err)
			continue
		}
		results[i].OK = true
		log.Info("schema change applied")
	}
	return results, nil
}
