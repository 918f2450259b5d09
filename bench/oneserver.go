package bench

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
)

// oneServerCluster is the etcd name of the router-2shards-1server target's
// placement, beside the throwaway cluster's own ("default").
const oneServerCluster = "bench-one-server"

// writeOneServerPlacement writes, under the name oneServerCluster in the
// etcd at endpoint, a copy of the cluster's placement in which every
// shard's members are the primary of shard onto: the same shards and slot
// table, so every tenant keeps its shard and a router still routes by
// tenant over a pool per shard, while all of them reach one server. It
// checks that each tenant of want (tenant to shard) is where want says in
// the copy.
func writeOneServerPlacement(ctx context.Context, endpoint, onto string, want map[string]string, log *slog.Logger) error {
	cli, err := etcdstore.Dial(ctx, []string{endpoint}, log)
	if err != nil {
		return err
	}
	defer cli.Close()
	src, err := etcdstore.NewStore(cli, "default")
	if err != nil {
		return err
	}
	pl, err := src.Load(ctx)
	if err != nil {
		return fmt.Errorf("read the cluster's placement: %w", err)
	}
	server, ok := pl.Shards[shardline.ShardID(onto)]
	if !ok {
		return fmt.Errorf("one-server placement: the cluster has no shard %s", onto)
	}
	shards := make([]shardline.Shard, 0, len(pl.Shards))
	for _, id := range pl.ShardIDs() {
		sh := pl.Shards[id].Clone()
		sh.Primary.DSN, sh.Replicas = server.Primary.DSN, nil
		shards = append(shards, sh)
	}
	dst, err := etcdstore.NewStore(cli, oneServerCluster)
	if err != nil {
		return err
	}
	if _, err := dst.Bootstrap(ctx, shards); err != nil {
		return fmt.Errorf("write the one-server placement: %w", err)
	}
	for tenant, shard := range want {
		loc, err := dst.Locate(ctx, shardline.TenantID(tenant))
		if err != nil {
			return fmt.Errorf("one-server placement: %w", err)
		}
		if string(loc.Shard) != shard {
			return fmt.Errorf("one-server placement: tenant %s is on shard %s there, not %s as in the cluster", tenant, loc.Shard, shard)
		}
	}
	return nil
}

// oneServerTarget writes the one-server placement and starts the
// router-2shards-1server target's router on it, with router-2shards' pool
// size per shard.
func (s *Setup) oneServerTarget(ctx context.Context, cfg SetupConfig, tenant1, shard1, tenant2, shard2, hop string, ep1, ep2 Endpoint,
	progress func(string, ...any)) (Target, error) {
	progress("writing a placement with shards %s and %s both on %s's primary (etcd name %s)", shard1, shard2, shard1, oneServerCluster)
	if err := writeOneServerPlacement(ctx, s.cluster.Etcd, shard1, map[string]string{tenant1: shard1, tenant2: shard2}, cfg.Logger); err != nil {
		return Target{}, err
	}
	r, proc, err := s.startRouter(ctx, cfg, TargetRouter2OneServer, max(1, cfg.PoolSize/2), oneServerCluster, progress)
	if err != nil {
		return Target{}, err
	}
	return Target{
		Name: TargetRouter2OneServer,
		Description: fmt.Sprintf("Shardline router, two pgbench processes at once, half the clients each: tenant %s (shard %s) and tenant %s (shard %s), "+
			"by startup option, with both shards on shard %s's primary (the routing of router-2shards without its second server)",
			tenant1, shard1, tenant2, shard2, shard1),
		Endpoints:  []Endpoint{{DSN: r.DSN, Options: ep1.Options}, {DSN: r.DSN, Options: ep2.Options}},
		Workloads:  oneServerWorkloads(),
		ProxyPID:   r.PID(),
		Process:    proc,
		Pool:       fmt.Sprintf("%d per shard: %d in all, every one to shard %s's primary, over %s", r.PoolSize, 2*r.PoolSize, shard1, hop),
		MetricsURL: r.MetricsURL,
	}, nil
}
