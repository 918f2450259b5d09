package etcdstore_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func testShards(n int) []shardline.Shard {
	shards := make([]shardline.Shard, n)
	for i := range shards {
		id := shardline.ShardID(fmt.Sprintf("s%d", i+1))
		shards[i] = shardline.Shard{
			ID:       id,
			Primary:  shardline.Member{Name: string(id) + "-p", DSN: fmt.Sprintf("host=127.0.0.1 port=%d", 7000+10*i)},
			Replicas: []shardline.Member{{Name: string(id) + "-r1", DSN: fmt.Sprintf("host=127.0.0.1 port=%d", 7001+10*i)}},
		}
	}
	return shards
}

func newStore(t *testing.T, cli *clientv3.Client) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.NewStore(cli, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bootstrapped(t *testing.T, shards int) (*etcdstore.Store, *shardline.Placement) {
	t.Helper()
	s := newStore(t, etcdtest.Start(t))
	p, err := s.Bootstrap(t.Context(), testShards(shards))
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func TestLoadBeforeBootstrap(t *testing.T) {
	s := newStore(t, etcdtest.Start(t))
	if _, err := s.Load(t.Context()); !errors.Is(err, shardline.ErrNoPlacement) {
		t.Fatalf("Load = %v, want ErrNoPlacement", err)
	}
	if _, err := s.CreateTenant(t.Context(), "acme", ""); !errors.Is(err, shardline.ErrNoPlacement) {
		t.Fatalf("CreateTenant = %v, want ErrNoPlacement", err)
	}
}

func TestBootstrapIdempotentAndEven(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, etcdtest.Start(t))
	shards := testShards(3)
	p1, err := s.Bootstrap(ctx, shards)
	if err != nil {
		t.Fatal(err)
	}
	counts := p1.SlotCounts()
	for _, sh := range shards {
		if c := counts[sh.ID]; c < shardline.SlotCount/3 || c > shardline.SlotCount/3+1 {
			t.Errorf("shard %s owns %d slots", sh.ID, c)
		}
		if got := p1.Shards[sh.ID]; got.Primary != sh.Primary || len(got.Replicas) != 1 {
			t.Errorf("shard %s = %+v", sh.ID, got)
		}
	}

	p2, err := s.Bootstrap(ctx, shards)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Revision != p1.Revision {
		t.Errorf("second bootstrap wrote: revision %d -> %d", p1.Revision, p2.Revision)
	}

	// A server user given at a later bootstrap (the first start after it
	// existed) is stored, without raising the epoch.
	withUser := testShards(3)
	withUser[2].ServerUser = "shardline_app"
	pu, err := s.Bootstrap(ctx, withUser)
	if err != nil {
		t.Fatal(err)
	}
	if got := pu.Shards["s3"]; got.ServerUser != "shardline_app" || got.Epoch != 0 {
		t.Errorf("s3 after a server user = %+v, want server_user shardline_app, epoch 0", got)
	}
	if got, err := s.Shard(ctx, "s3"); err != nil || got.ServerUser != "shardline_app" {
		t.Errorf("s3 read back = %+v, %v", got, err)
	}

	// A pinned tenant and the slot table survive a later bootstrap that
	// changes members; a new primary raises the epoch, a new replica does not.
	if _, err := s.PinTenant(ctx, "acme", "s3"); err != nil {
		t.Fatal(err)
	}
	changed := testShards(3)
	changed[0].Primary.DSN = "host=elsewhere"
	changed[1].Replicas = append(changed[1].Replicas, shardline.Member{Name: "s2-r2", DSN: "host=r2"})
	p3, err := s.Bootstrap(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if got := p3.Shards["s1"]; got.Primary.DSN != "host=elsewhere" || got.Epoch != 1 {
		t.Errorf("s1 after new primary = %+v, want epoch 1", got)
	}
	if got := p3.Shards["s2"]; len(got.Replicas) != 2 || got.Epoch != 0 {
		t.Errorf("s2 after new replica = %+v, want 2 replicas, epoch 0", got)
	}
	for i := range p3.Slots {
		if p3.Slots[i] != p1.Slots[i] {
			t.Fatalf("slot %d moved from %s to %s", i, p1.Slots[i], p3.Slots[i])
		}
	}
	if p3.Overrides["acme"] != "s3" {
		t.Errorf("override lost: %v", p3.Overrides)
	}

	if _, err := s.Bootstrap(ctx, testShards(4)); !errors.Is(err, shardline.ErrInvalidShard) || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("bootstrap with a new shard = %v", err)
	}
	if _, err := s.Bootstrap(ctx, nil); !errors.Is(err, shardline.ErrInvalidShard) {
		t.Errorf("bootstrap with no shards = %v", err)
	}
	dup := append(testShards(1), testShards(1)...)
	if _, err := s.Bootstrap(ctx, dup); !errors.Is(err, shardline.ErrInvalidShard) {
		t.Errorf("bootstrap with a duplicate = %v", err)
	}
}

func TestConcurrentBootstrap(t *testing.T) {
	s := newStore(t, etcdtest.Start(t))
	var wg sync.WaitGroup
	revs := make([]int64, 4)
	for i := range revs {
		wg.Go(func() {
			p, err := s.Bootstrap(t.Context(), testShards(2))
			if err != nil {
				t.Error(err)
				return
			}
			revs[i] = p.Revision
		})
	}
	wg.Wait()
	p, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c := p.SlotCounts(); c["s1"] != 2048 || c["s2"] != 2048 {
		t.Errorf("slot counts %v", c)
	}
}

func TestTenants(t *testing.T) {
	ctx := t.Context()
	s, _ := bootstrapped(t, 2)

	for _, tc := range []struct {
		tenant shardline.TenantID
		shard  shardline.ShardID
		want   error
	}{
		{"", "", shardline.ErrInvalidTenant},
		{"a b", "", shardline.ErrInvalidTenant},
		{"acme", "S1", shardline.ErrInvalidShard},
		{"acme", "s9", shardline.ErrShardNotFound},
	} {
		if _, err := s.CreateTenant(ctx, tc.tenant, tc.shard); !errors.Is(err, tc.want) {
			t.Errorf("CreateTenant(%q, %q) = %v, want %v", tc.tenant, tc.shard, err, tc.want)
		}
	}

	rec, err := s.CreateTenant(ctx, "zeta", "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Pinned() || rec.CreatedAt.IsZero() || rec.ModRevision == 0 {
		t.Fatalf("created %+v", rec)
	}
	again, err := s.CreateTenant(ctx, "zeta", "")
	if err != nil || again.ModRevision != rec.ModRevision || !again.CreatedAt.Equal(rec.CreatedAt) {
		t.Fatalf("second create = %+v, %v; want the same record unchanged", again, err)
	}
	pinned, err := s.CreateTenant(ctx, "zeta", "s2")
	if err != nil || pinned.Shard != "s2" || pinned.ModRevision <= rec.ModRevision || !pinned.CreatedAt.Equal(rec.CreatedAt) {
		t.Fatalf("create with another shard = %+v, %v; want pinned to s2", pinned, err)
	}
	if same, err := s.CreateTenant(ctx, "zeta", ""); err != nil || same.Shard != "s2" {
		t.Fatalf("create without shard unpinned: %+v, %v", same, err)
	}
	if _, err := s.CreateTenant(ctx, "acme", "s1"); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Tenant != "acme" || list[1].Tenant != "zeta" {
		t.Fatalf("ListTenants = %+v", list)
	}
	if _, err := s.GetTenant(ctx, "nobody"); !errors.Is(err, shardline.ErrTenantNotFound) {
		t.Errorf("GetTenant(nobody) = %v", err)
	}

	un, err := s.UnpinTenant(ctx, "zeta")
	if err != nil || un.Pinned() {
		t.Fatalf("UnpinTenant = %+v, %v", un, err)
	}
	if _, err := s.UnpinTenant(ctx, "nobody"); !errors.Is(err, shardline.ErrTenantNotFound) {
		t.Errorf("UnpinTenant(nobody) = %v", err)
	}
	if _, err := s.PinTenant(ctx, "acme", ""); !errors.Is(err, shardline.ErrInvalidShard) {
		t.Errorf("PinTenant without shard = %v", err)
	}
	if _, err := s.PinTenant(ctx, "fresh", "s2"); err != nil {
		t.Errorf("PinTenant of an unregistered tenant = %v", err)
	}

	p, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[shardline.TenantID]shardline.ShardID{"acme": "s1", "fresh": "s2"}
	if len(p.Overrides) != len(want) || p.Overrides["acme"] != "s1" || p.Overrides["fresh"] != "s2" {
		t.Errorf("overrides = %v, want %v", p.Overrides, want)
	}
}

// Two writers pin one tenant back and forth. Every call either succeeds or
// reports ErrConflict, and the key's history has exactly one version per
// successful write: no committed write went unreported and no reported
// write was overwritten unseen.
func TestConcurrentPinsLoseNoUpdate(t *testing.T) {
	ctx := t.Context()
	s, _ := bootstrapped(t, 2)
	created, err := s.CreateTenant(ctx, "acme", "s1")
	if err != nil {
		t.Fatal(err)
	}
	const perWriter = 40
	var mu sync.Mutex
	revs := map[int64]shardline.ShardID{created.ModRevision: "s1"}
	conflicts := 0
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := range perWriter {
				shard := shardline.ShardID("s1")
				if (i+w)%2 == 1 {
					shard = "s2"
				}
				rec, err := s.PinTenant(ctx, "acme", shard)
				mu.Lock()
				switch {
				case errors.Is(err, shardline.ErrConflict):
					conflicts++
				case err != nil:
					t.Errorf("PinTenant: %v", err)
				default:
					if !rec.CreatedAt.Equal(created.CreatedAt) {
						t.Errorf("CreatedAt changed: %v", rec.CreatedAt)
					}
					if prev, ok := revs[rec.ModRevision]; ok && prev != rec.Shard {
						t.Errorf("revision %d reported for %s and %s", rec.ModRevision, prev, rec.Shard)
					}
					revs[rec.ModRevision] = rec.Shard
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	cli := s.Client()
	resp, err := cli.Get(ctx, s.Prefix()+"tenants/acme")
	if err != nil {
		t.Fatal(err)
	}
	kv := resp.Kvs[0]
	if int(kv.Version) != len(revs) {
		t.Errorf("key has %d versions, successful writes reported %d distinct revisions", kv.Version, len(revs))
	}
	for rev, shard := range revs {
		r, err := cli.Get(ctx, s.Prefix()+"tenants/acme", clientv3.WithRev(rev))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) != 1 || r.Kvs[0].ModRevision != rev || !strings.Contains(string(r.Kvs[0].Value), `"shard":"`+string(shard)+`"`) {
			t.Errorf("at revision %d the record is %s, reported %s", rev, r.Kvs, shard)
		}
	}
	t.Logf("%d distinct writes, %d conflicts", len(revs), conflicts)
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	cli, e := etcdtest.StartEmbedded(t, dir)
	s := newStore(t, cli)
	p1, err := s.Bootstrap(t.Context(), testShards(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PinTenant(t.Context(), "acme", "s2"); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	e.Close()

	cli2, _ := etcdtest.StartEmbedded(t, dir)
	s2 := newStore(t, cli2)
	p2, err := s2.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p2.Revision <= p1.Revision || p2.Overrides["acme"] != "s2" || len(p2.Shards) != 2 {
		t.Fatalf("after restart: revision %d (before %d), overrides %v, %d shards", p2.Revision, p1.Revision, p2.Overrides, len(p2.Shards))
	}
	if _, err := s2.GetTenant(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
}

func TestStartEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, err = etcdstore.StartEmbedded(t.Context(), etcdstore.EmbeddedConfig{
		Dir:        t.TempDir(),
		ClientAddr: l.Addr().String(),
		PeerAddr:   "127.0.0.1:0",
	})
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "not free") {
		t.Fatalf("StartEmbedded on a busy port = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to fail", d)
	}
}

func TestLocate(t *testing.T) {
	ctx := t.Context()
	s, p := bootstrapped(t, 2)
	tp, err := s.Locate(ctx, "ghost")
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Locate("ghost"); tp.Location != want || tp.Registered || tp.Revision < p.Revision {
		t.Errorf("Locate(ghost) = %+v, want %+v unregistered", tp, want)
	}
	if _, err := s.PinTenant(ctx, "zed", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTenant(ctx, "abe", ""); err != nil {
		t.Fatal(err)
	}
	tp, err = s.Locate(ctx, "zed")
	if err != nil || !tp.Registered || !tp.Pinned || tp.Shard != "s1" || tp.Slot != shardline.SlotOf("zed") {
		t.Errorf("Locate(zed) = %+v, %v", tp, err)
	}
	all, err := s.LocateRegistered(ctx)
	if err != nil || len(all) != 2 || all[0].Tenant != "abe" || all[0].Pinned || all[0].Shard != p.Slots[all[0].Slot] || all[1].Tenant != "zed" {
		t.Errorf("LocateRegistered = %+v, %v", all, err)
	}
	if _, err := s.Locate(ctx, "a/b"); !errors.Is(err, shardline.ErrInvalidTenant) {
		t.Errorf("Locate(a/b) = %v", err)
	}
	empty := newStore(t, etcdtest.Start(t))
	if _, err := empty.Locate(ctx, "x"); !errors.Is(err, shardline.ErrNoPlacement) {
		t.Errorf("Locate before bootstrap = %v", err)
	}
}
