package shardmgr

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/postgres"
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

// TenantSchema is what a SchemaApplier may also do (found by type
// assertion): apply a change together with row-level security on every
// tenant table, and report the tenant tables without changing anything.
// postgres.SchemaAdmin does both.
type TenantSchema interface {
	ApplyTenantSchema(ctx context.Context, dsn, sql, column string) ([]postgres.TenantTableInfo, error)
	CheckTenantSchema(ctx context.Context, dsn, column string) ([]postgres.TenantTableInfo, error)
}

// SchemaResult is the outcome of a schema change (or check) on one shard.
type SchemaResult struct {
	Shard shardline.ShardID
	// OK is true when the change committed on the shard's primary (for a
	// check: when the shard was read).
	OK bool
	// Error says why it did not; "" when OK.
	Error string
	// Tables are the shard's tenant tables after the change, when the
	// applier knows them (TenantSchema).
	Tables []postgres.TenantTableInfo
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
		var err error
		if ts, ok := m.schema.(TenantSchema); ok {
			results[i].Tables, err = ts.ApplyTenantSchema(ctx, p.Shards[id].Primary.DSN, sql, m.tenantColumn)
		} else {
			err = m.schema.ApplySchema(ctx, p.Shards[id].Primary.DSN, sql)
		}
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

// CheckSchema reports every shard's tenant tables (their row-level
// security, policies, primary keys and opt-outs), changing nothing. A shard
// that cannot be read has its error in its result. The error is non-nil
// only when nothing was tried: the applier cannot check (ErrNoSchemaCheck),
// or the placement could not be read.
func (m *Manager) CheckSchema(ctx context.Context) ([]SchemaResult, error) {
	ts, ok := m.schema.(TenantSchema)
	if !ok {
		return nil, ErrNoSchemaCheck
	}
	p, err := m.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	ids := p.ShardIDs()
	results := make([]SchemaResult, len(ids))
	for i, id := range ids {
		results[i].Shard = id
		tables, err := ts.CheckTenantSchema(ctx, p.Shards[id].Primary.DSN, m.tenantColumn)
		if err != nil {
			results[i].Error = err.Error()
			continue
		}
		results[i].OK, results[i].Tables = true, tables
	}
	return results, nil
}

// TenantColumn is the tenant column of the cluster's tenant tables.
func (m *Manager) TenantColumn() string { return m.tenantColumn }
