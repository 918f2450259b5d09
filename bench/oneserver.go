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
// shard's members are the first shard's primary: the same shards and slot
// table, so every tenant keeps its shard and a router still routes by
// tenant over a pool per shard, while all of them reach one server. It
// checks that each tenant of want (tenant to shard) is where want says in
// the copy.
func writeOneServerPlacement(ctx context.Context, endpoint string, want map[string]string, log *slog.Logger) error {
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
	ids := pl.ShardIDs()
	first := pl.Shards[ids[0]].Primary
	shards := make([]shardline.Shard, 0, len(ids))
	for _, id := range ids {
		sh := pl.Shards[id].Clone()
		sh.Primary.DSN, sh.Replicas = first.DSN, nil
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
