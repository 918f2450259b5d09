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

// oneServer is TargetRouter2OneServer: it writes the one-server placement
// and starts the target's router on it, with router-2shards' pool size per
// shard.
func (b *builder) oneServer(ctx context.Context) (Target, error) {
	b.progress("writing a placement with shards %s and %s both on %s's primary (etcd name %s)", b.shard1, b.shard2, b.shard1, oneServerCluster)
	if err := writeOneServerPlacement(ctx, b.s.cluster.Etcd, b.shard1, map[string]string{b.tenant1: b.shard1, b.tenant2: b.shard2}, b.cfg.Logger); err != nil {
		return Target{}, err
	}
	r, proc, err := b.startRouter(ctx, TargetRouter2OneServer, max(1, b.cfg.PoolSize/2), oneServerCluster, nil)
	if err != nil {
		return Target{}, err
	}
	rs := routerSide{dsn: r.DSN, pid: r.PID(), metricsURL: r.MetricsURL, process: proc,
		pool: fmt.Sprintf("%d per shard: %d in all, every one to shard %s's primary, over %s", r.PoolSize, 2*r.PoolSize, b.shard1, b.hop)}
	t := rs.target(TargetRouter2OneServer, fmt.Sprintf("Shardline router, two pgbench processes at once, half the clients each: tenant %s (shard %s) and tenant %s (shard %s), "+
		"by startup option, with both shards on shard %s's primary (the routing of router-2shards without its second server)",
		b.tenant1, b.shard1, b.tenant2, b.shard2, b.shard1), b.ep1, b.ep2)
	t.Workloads = oneServerWorkloads()
	return t, nil
}
