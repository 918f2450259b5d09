package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// The replica workloads' targets, built when their workloads run (not by
// --targets).
const (
	// TargetRouterPrimary and TargetRouterReplica are the replica-read
	// workload's targets: the router on a cluster with replicas, every
	// session read-only by default (default_transaction_read_only=on),
	// with shardline.target=primary and shardline.target=replica.
	TargetRouterPrimary = "router-primary"
	TargetRouterReplica = "router-replica"
	// TargetRouterNoTokens and TargetRouterTokens are the write-token
	// workload's targets: the router of a second throwaway cluster started
	// with --no-write-tokens, and the first cluster's router, which takes
	// a read-your-writes token after each write transaction.
	TargetRouterNoTokens = "router-no-tokens"
	TargetRouterTokens   = "router-tokens"
)

// benchReplicas is the streaming replicas per shard of a throwaway cluster
// for the replica workloads.
const benchReplicas = 1

// replicaRunLag is the lag within which the replica-read cell's replica
// must be before each of its runs: a quarter of shardline.max_lag's 1s.
const replicaRunLag = 250 * time.Millisecond

// replicaReadyTimeout bounds the wait for the replicas to catch up after
// the pgbench tables were created.
const replicaReadyTimeout = 2 * time.Minute

// The replica workloads' targets use the routers of `shardline up`.
const upProcess = "shardline up: etcd, the manager and its router in one process"

// upPool is the pool of a `shardline up` router.
func (b *builder) upPool() string { return fmt.Sprintf("%d per shard member", b.cfg.PoolSize) }

// replicaReadTargets are TargetRouterPrimary and TargetRouterReplica, on
// the throwaway cluster's router once the replicas of shard1 caught up.
func (b *builder) replicaReadTargets(ctx context.Context) ([]Target, error) {
	cluster := b.s.cluster
	// Reads may use a replica only once it has replayed the tables
	// within shardline.max_lag (1s by default).
	b.progress("waiting for the replicas of shard %s to catch up", b.shard1)
	if err := cluster.WaitReplicas(ctx, b.shard1, time.Second, replicaReadyTimeout); err != nil {
		return nil, err
	}
	const readOnly = " -c default_transaction_read_only=on"
	primary := Target{
		Name: TargetRouterPrimary,
		Description: fmt.Sprintf("Shardline router, %d streaming replica(s) per shard, every client tenant %s (shard %s) with shardline.target=primary "+
			"and default_transaction_read_only=on: reads on the primary", b.replicas, b.tenant1, b.shard1),
		Endpoints:  []Endpoint{{DSN: b.routerDSN, Options: b.ep1.Options + " -c shardline.target=primary" + readOnly}},
		ProxyPID:   b.routerPID,
		Process:    upProcess,
		Pool:       b.upPool(),
		Workloads:  []string{WorkloadReplicaRead},
		MetricsURL: cluster.MetricsURL,
	}
	// The same router and tenant, reads sent to a replica.
	replica := primary
	replica.Name = TargetRouterReplica
	replica.Description = fmt.Sprintf("the same router and tenant with shardline.target=replica and default_transaction_read_only=on: "+
		"read-only transactions on a replica of shard %s within shardline.max_lag (1s), else on the primary", b.shard1)
	replica.Endpoints = []Endpoint{{DSN: b.routerDSN, Options: b.ep1.Options + " -c shardline.target=replica" + readOnly}}
	// A write cell before this one (write-token on this cluster) leaves
	// the replica WAL to replay; reads wait for it on the primary. This
	// cell measures reads on a replica that has caught up, so each run
	// starts once the replica is well within the 1s bound.
	replica.Ready = func(ctx context.Context) error {
		return cluster.WaitReplicas(ctx, b.shard1, replicaRunLag, replicaReadyTimeout)
	}
	return []Target{primary, replica}, nil
}

// writeTokenTargets start a second throwaway cluster with
// --no-write-tokens, create the pgbench tables through its router, and
// return TargetRouterNoTokens on it and TargetRouterTokens on the first
// cluster's router.
func (b *builder) writeTokenTargets(ctx context.Context) ([]Target, error) {
	cfg, s := b.cfg, b.s
	b.progress("starting a second throwaway cluster for the write-token workload: shardline up --shards 2 --replicas %d --no-write-tokens", b.replicas)
	var err error
	s.noTokens, err = StartCluster(ctx, ClusterConfig{
		Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv,
		Dir: filepath.Join(cfg.Dir, "up-no-tokens"), PoolSize: cfg.PoolSize, Replicas: b.replicas, NoWriteTokens: true, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start the cluster without write tokens: %w", err)
	}
	s.NoTokensLog = s.noTokens.LogPath()
	shards, err := s.noTokens.Shards(ctx)
	if err != nil {
		return nil, err
	}
	tenants, err := s.noTokens.FindTenants(ctx, cfg.TenantPrefix, []string{shards[0].ID})
	if err != nil {
		return nil, err
	}
	epNo := Endpoint{DSN: s.noTokens.RouterDSN, Options: "-c shardline.tenant=" + tenants[shards[0].ID]}
	if err := initTables(ctx, b.pb, cfg, TargetRouterNoTokens, epNo, b.progress); err != nil {
		return nil, err
	}
	return []Target{
		{
			Name: TargetRouterNoTokens,
			Description: fmt.Sprintf("Shardline router of a second throwaway cluster like the first, started with --no-write-tokens: "+
				"every client tenant %s (shard %s), no read-your-writes token after write transactions", tenants[shards[0].ID], shards[0].ID),
			Endpoints:  []Endpoint{epNo},
			ProxyPID:   s.noTokens.PID(),
			Process:    "shardline up --no-write-tokens (a second cluster): etcd, the manager and its router in one process",
			Pool:       b.upPool(),
			Workloads:  []string{WorkloadWriteToken},
			MetricsURL: s.noTokens.MetricsURL,
		},
		{
			Name: TargetRouterTokens,
			Description: fmt.Sprintf("Shardline router of the first cluster (%d streaming replica(s) per shard), every client tenant %s (shard %s): "+
				"a read-your-writes token (SELECT pg_current_wal_insert_lsn() pipelined behind the COMMIT) after each write transaction", b.replicas, b.tenant1, b.shard1),
			Endpoints:  []Endpoint{b.ep1},
			ProxyPID:   b.routerPID,
			Process:    upProcess,
			Pool:       b.upPool(),
			Workloads:  []string{WorkloadWriteToken},
			MetricsURL: s.cluster.MetricsURL,
		},
	}, nil
}
