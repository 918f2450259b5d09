package bench

import (
	"context"
	"fmt"
	"path/filepath"
)

// pgbouncer is TargetPgBouncer: a PgBouncer of the bench's in front of the
// first shard's primary, with the bench's pool size.
func (b *builder) pgbouncer(ctx context.Context) (Target, error) {
	cfg := b.cfg
	b.progress("starting PgBouncer (transaction mode, pool size %d) in front of shard %s's primary", cfg.PoolSize, b.shard1)
	pgb, err := b.startBouncer(ctx, TargetPgBouncer, PgBouncerConfig{Server: b.directDSN, PoolSize: cfg.PoolSize})
	if err != nil {
		return Target{}, err
	}
	t := bouncerTarget(TargetPgBouncer, pgb, fmt.Sprintf("%s, pool_mode=transaction, default_pool_size=%d, in front of the primary of shard %s%s",
		pgb.Version(), pgb.PoolSize(), b.shard1, b.onCluster))
	t.Pool = fmt.Sprintf("%d to shard %s (default_pool_size), over %s", pgb.PoolSize(), b.shard1, b.hop)
	if err := b.pb.Check(ctx, TargetPgBouncer, t.Endpoints[0]); err != nil {
		return Target{}, err
	}
	return t, nil
}

// pgbouncer2 is TargetPgBouncer2: a PgBouncer of its own in front of both
// shards' primaries, one database name each, with half the pool size per
// database.
func (b *builder) pgbouncer2(ctx context.Context) (Target, error) {
	pool := max(1, b.cfg.PoolSize/2)
	b.progress("starting PgBouncer (transaction mode, pool size %d per database) in front of shards %s and %s's primaries", pool, b.shard1, b.shard2)
	pgb, err := b.startBouncer(ctx, TargetPgBouncer2, PgBouncerConfig{Server: b.directDSN, PoolSize: pool,
		Also: []PgBouncerDatabase{{Name: secondDatabase(b.directDSN2), Server: b.directDSN2}}})
	if err != nil {
		return Target{}, err
	}
	dbs := pgb.Databases()
	t := bouncerTarget(TargetPgBouncer2, pgb, fmt.Sprintf("%s, two pgbench processes at once, half the clients each: database %s (shard %s) and %s (shard %s), "+
		"pool_mode=transaction, default_pool_size=%d per database (PgBouncer routing by database name: the control for router-2shards)%s",
		pgb.Version(), dbs[0], b.shard1, dbs[1], b.shard2, pgb.PoolSize(), b.onCluster))
	t.Pool = fmt.Sprintf("%d per shard: %d in all to shards %s and %s, over %s", pgb.PoolSize(), 2*pgb.PoolSize(), b.shard1, b.shard2, b.hop)
	t.Workloads = direct2Workloads()
	return t, nil
}

// startBouncer starts a PgBouncer of the bench's for target, in a work
// directory of its own, with c's servers and pool size and the bench's
// binary and max_client_conn.
func (b *builder) startBouncer(ctx context.Context, target string, c PgBouncerConfig) (*PgBouncer, error) {
	c.Path, c.MaxClientConn, c.Logger = b.cfg.PgBouncerPath, b.cfg.MaxClientConn, b.cfg.Logger
	c.Dir = filepath.Join(b.cfg.Dir, target)
	pgb, err := StartPgBouncer(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("start pgbouncer for %s: %w", target, err)
	}
	b.s.bouncers = append(b.s.bouncers, pgb)
	b.s.Environment.PgBouncer = pgb.Version()
	return pgb, nil
}

// bouncerTarget is the target of PgBouncer b: its endpoints, process and
// what it cannot serve.
func bouncerTarget(name string, b *PgBouncer, description string) Target {
	t := Target{Name: name, Description: description, Endpoints: b.Endpoints(), ProxyPID: b.PID(), Process: b.Version()}
	if !b.PreparedStatements() {
		t.Unsupported = map[string]string{WorkloadSelectPrepared: b.Version() +
			" in transaction mode does not keep named prepared statements across server connections (pgbench -M prepared aborts)"}
	}
	return t
}

// secondDatabase names the second shard's database for clients of a
// PgBouncer that pools both shards: the server's database name with "_2"
// (app_2), as both shards' databases have the same name.
func secondDatabase(dsn string) string {
	name := "app"
	if srv, err := parseServer(dsn); err == nil {
		name = srv.dbname
	}
	return name + "_2"
}
