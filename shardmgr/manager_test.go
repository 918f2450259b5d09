package shardmgr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
	"github.com/shardline/shardline/storage/postgres"
)

type fixedRouter int64

func (r fixedRouter) MapRevision() int64 { return int64(r) }

func (r fixedRouter) ReplicaHealth() map[string]shardline.ReplicaHealth { return nil }

func testShards(n int) []shardline.Shard {
	shards := make([]shardline.Shard, n)
	for i := range shards {
		id := shardline.ShardID(fmt.Sprintf("s%d", i+1))
		shards[i] = shardline.Shard{
			ID:       id,
			Primary:  shardline.Member{Name: string(id) + "-primary", DSN: fmt.Sprintf("postgres://127.0.0.1:%d/db", 7000+i)},
			Replicas: []shardline.Member{{Name: string(id) + "-replica1", DSN: fmt.Sprintf("postgres://127.0.0.1:%d/db", 7100+i)}},
		}
	}
	return shards
}

// newManager returns a manager over a fresh embedded etcd, bootstrapped with
// shards unless shards is nil.
func newManager(t *testing.T, shards []shardline.Shard, router shardmgr.RouterInfo) (*shardmgr.Manager, *etcdstore.Store) {
	t.Helper()
	return newManagerWith(t, shards, router, shardmgr.SchemaApplierFunc(postgres.ApplySchema))
}

// newManagerWith is newManager with another schema applier.
func newManagerWith(t *testing.T, shards []shardline.Shard, router shardmgr.RouterInfo, schema shardmgr.SchemaApplier) (*shardmgr.Manager, *etcdstore.Store) {
	t.Helper()
	store, err := etcdstore.NewStore(etcdtest.Start(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	if shards != nil {
		if _, err := store.Bootstrap(t.Context(), shards); err != nil {
			t.Fatal(err)
		}
	}
	m, err := shardmgr.New(shardmgr.Config{Store: store, Schema: schema, Data: noRows, Router: router})
	if err != nil {
		t.Fatal(err)
	}
	return m, store
}

// noRows is the TenantData of the tests whose shards are DSNs that lead
// nowhere: no tenant has rows.
var noRows = shardmgr.TenantDataFunc(func(context.Context, string, shardline.TenantID) (string, error) { return "", nil })

func TestConfigValidate(t *testing.T) {
	var cfg shardmgr.Config
	err := cfg.Validate()
	if err == nil {
		t.Fatal("empty config is valid")
	}
	if _, err := shardmgr.New(cfg); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

func TestStatus(t *testing.T) {
	ctx := t.Context()
	m, _ := newManager(t, nil, nil)
	if _, err := m.Status(ctx); !errors.Is(err, shardline.ErrNoPlacement) {
		t.Fatalf("Status before bootstrap = %v", err)
	}

	m, store := newManager(t, testShards(3), fixedRouter(42))
	for _, tenant := range []shardline.TenantID{"a", "b"} {
		if _, err := m.PinTenant(ctx, tenant, "s3"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.CreateTenant(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "test" || st.MapRevision != 42 || st.EtcdRevision != p.Revision {
		t.Errorf("status header %+v, etcd at %d", st, p.Revision)
	}
	if len(st.Shards) != 3 {
		t.Fatalf("%d shards", len(st.Shards))
	}
	total := 0
	for i, s := range st.Shards {
		want := testShards(3)[i]
		if s.Shard.ID != want.ID || s.Shard.Primary != want.Primary || len(s.Shard.Replicas) != 1 {
			t.Errorf("shard %d = %+v", i, s.Shard)
		}
		total += s.Slots
		if wantPinned := map[int]int{2: 2}[i]; s.PinnedTenants != wantPinned {
			t.Errorf("shard %s has %d pinned, want %d", s.Shard.ID, s.PinnedTenants, wantPinned)
		}
	}
	if total != shardline.SlotCount {
		t.Errorf("slots add up to %d", total)
	}
}

func TestTenantViews(t *testing.T) {
	ctx := t.Context()
	m, store := newManager(t, testShards(2), nil)
	p, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}

	v, err := m.ShowTenant(ctx, "ghost")
	if err != nil {
		t.Fatalf("ShowTenant of an unknown tenant: %v", err)
	}
	slot := shardline.SlotOf("ghost")
	if v.Registered || v.Pinned || v.Slot != slot || v.Shard != p.Slots[slot] {
		t.Errorf("unknown tenant view %+v", v)
	}

	v, err = m.CreateTenant(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	home := p.Slots[shardline.SlotOf("acme")]
	if !v.Registered || v.Pinned || v.Shard != home {
		t.Errorf("created %+v", v)
	}
	other := shardline.ShardID("s1")
	if home == other {
		other = "s2"
	}
	if v, err = m.PinTenant(ctx, "acme", ""); err != nil || !v.Pinned || v.Shard != home {
		t.Errorf("pin in place = %+v, %v; want pinned to %s", v, err, home)
	}
	if v, err = m.PinTenant(ctx, "acme", other); err != nil || !v.Pinned || v.Shard != other {
		t.Errorf("pin to %s = %+v, %v", other, v, err)
	}
	if v, err = m.ShowTenant(ctx, "acme"); err != nil || !v.Registered || v.Shard != other {
		t.Errorf("show pinned = %+v, %v", v, err)
	}
	if v, err = m.UnpinTenant(ctx, "acme"); err != nil || v.Pinned || v.Shard != home {
		t.Errorf("unpin = %+v, %v", v, err)
	}
	if _, err := m.CreateTenant(ctx, "beta", other); err != nil {
		t.Fatal(err)
	}
	list, err := m.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Tenant != "acme" || list[1].Tenant != "beta" || !list[1].Pinned || list[1].Shard != other {
		t.Errorf("list = %+v", list)
	}

	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"show invalid", second(m.ShowTenant(ctx, "a b")), shardline.ErrInvalidTenant},
		{"create invalid", second(m.CreateTenant(ctx, "", "")), shardline.ErrInvalidTenant},
		{"create unknown shard", second(m.CreateTenant(ctx, "x", "s9")), shardline.ErrShardNotFound},
		{"pin bad shard", second(m.PinTenant(ctx, "x", "S1")), shardline.ErrInvalidShard},
		{"unpin unknown", second(m.UnpinTenant(ctx, "nobody")), shardline.ErrTenantNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestApplySchemaStopsAtFirstFailure(t *testing.T) {
	ctx := t.Context()
	var calls []string
	fail := map[string]error{"postgres://127.0.0.1:7001/db": errors.New("boom")}
	store, err := etcdstore.NewStore(etcdtest.Start(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Bootstrap(ctx, testShards(3)); err != nil {
		t.Fatal(err)
	}
	m, err := shardmgr.New(shardmgr.Config{Store: store, Data: noRows, Schema: shardmgr.SchemaApplierFunc(func(_ context.Context, dsn, _ string) error {
		calls = append(calls, dsn)
		return fail[dsn]
	})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ApplySchema(ctx, "  \n"); !errors.Is(err, shardmgr.ErrEmptySchema) {
		t.Errorf("empty schema = %v", err)
	}
	res, err := m.ApplySchema(ctx, "CREATE TABLE t (tenant_id text)")
	if err != nil {
		t.Fatal(err)
	}
	want := []shardmgr.SchemaResult{
		{Shard: "s1", OK: true},
		{Shard: "s2", Error: "boom"},
		{Shard: "s3", Error: "not run: shard s2 failed first"},
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("results %+v, want %+v", res, want)
	}
	if len(calls) != 2 {
		t.Errorf("applier called for %v", calls)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	res, err = m.ApplySchema(cancelled, "SELECT 1")
	if err == nil {
		for _, r := range res {
			if r.OK {
				t.Errorf("shard %s ran after cancel", r.Shard)
			}
		}
	}
}
