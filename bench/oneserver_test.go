package bench

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
)

// TestWriteOneServerPlacement copies a two-shard placement in a real etcd:
// the copy has the same shards and slots, every member is the first
// shard's primary, each tenant keeps its shard, and the cluster's own
// placement is left as it was.
func TestWriteOneServerPlacement(t *testing.T) {
	ctx := t.Context()
	cli := etcdtest.Start(t)
	src, err := etcdstore.NewStore(cli, "default")
	if err != nil {
		t.Fatal(err)
	}
	dsn1, dsn2 := "host=/run/a port=1 dbname=app", "host=/run/b port=2 dbname=app"
	orig, err := src.Bootstrap(ctx, []shardline.Shard{
		{ID: "s1", Primary: shardline.Member{Name: "s1-primary", DSN: dsn1}, Epoch: 1},
		{ID: "s2", Primary: shardline.Member{Name: "s2-primary", DSN: dsn2},
			Replicas: []shardline.Member{{Name: "s2-replica1", DSN: "host=/run/c port=3"}}, Epoch: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 1; len(want) < 2 && i < 1000; i++ {
		tenant := "bench" + strconv.Itoa(i)
		shard := string(orig.Locate(shardline.TenantID(tenant)).Shard)
		if !slices.Contains(slices.Collect(maps.Values(want)), shard) {
			want[tenant] = shard
		}
	}
	if len(want) != 2 {
		t.Fatalf("no tenant on each shard: %v", want)
	}
	ep := cli.Endpoints()[0]
	if err := writeOneServerPlacement(ctx, ep, "s1", want, nil); err != nil {
		t.Fatal(err)
	}
	dst, err := etcdstore.NewStore(cli, oneServerCluster)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := dst.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cp.ShardIDs(), orig.ShardIDs()) || !slices.Equal(cp.Slots, orig.Slots) {
		t.Errorf("copy: shards %v and %d slots, want %v and the same slots", cp.ShardIDs(), len(cp.Slots), orig.ShardIDs())
	}
	for id, sh := range cp.Shards {
		if sh.Primary.DSN != dsn1 || len(sh.Replicas) != 0 || sh.Primary.Name != orig.Shards[id].Primary.Name {
			t.Errorf("copy: shard %s = %+v, want its primary's name with %q and no replicas", id, sh, dsn1)
		}
	}
	for tenant, shard := range want {
		if got := cp.Locate(shardline.TenantID(tenant)).Shard; string(got) != shard {
			t.Errorf("copy: tenant %s on %s, want %s", tenant, got, shard)
		}
	}
	after, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Shards["s2"].Primary.DSN != dsn2 || len(after.Shards["s2"].Replicas) != 1 {
		t.Errorf("the cluster's own placement changed: %+v", after.Shards["s2"])
	}

	// A tenant said to be elsewhere than the copy puts it: an error that
	// names it. (The copy exists now; Bootstrap leaves it as it is.)
	for tenant, shard := range want {
		other := map[string]string{tenant: map[string]string{"s1": "s2", "s2": "s1"}[shard]}
		if err := writeOneServerPlacement(ctx, ep, "s1", other, nil); err == nil || !strings.Contains(err.Error(), tenant) {
			t.Errorf("tenant %s said to be on the other shard: err = %v, want one naming the tenant", tenant, err)
		}
		break
	}
}
