package shardmgr_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestPinRefusesTenantWithRows runs over real PostgreSQL shards and a real
// etcd: a tenant with a row on its shard is not pinned, created or
// unpinned onto another shard; a tenant without rows is, and so is a pin
// in place.
func TestPinRefusesTenantWithRows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	local := pgtest.ForTest(t, 2, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := etcdstore.NewStore(etcdtest.Start(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Bootstrap(ctx, local.Shards())
	if err != nil {
		t.Fatal(err)
	}
	rows := shardmgr.TenantDataFunc(func(ctx context.Context, dsn string, t shardline.TenantID) (string, error) {
		return postgres.TenantTable(ctx, dsn, postgres.DefaultTenantColumn, string(t))
	})
	m, err := shardmgr.New(shardmgr.Config{Store: store, Schema: shardmgr.SchemaApplierFunc(postgres.ApplySchema), Data: rows})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := m.ApplySchema(ctx, "CREATE TABLE orders (tenant_id text, id int, PRIMARY KEY (tenant_id, id))"); err != nil || !res[0].OK || !res[1].OK {
		t.Fatalf("schema: %+v, %v", res, err)
	}
	home := p.Locate("acme").Shard
	other := map[shardline.ShardID]shardline.ShardID{"s1": "s2", "s2": "s1"}[home]
	if err := postgres.ApplySchema(ctx, p.Shards[home].Primary.DSN, "INSERT INTO orders VALUES ('acme', 1)"); err != nil {
		t.Fatal(err)
	}

	for name, call := range map[string]func() error{
		"pin":    func() error { return second(m.PinTenant(ctx, "acme", other)) },
		"create": func() error { return second(m.CreateTenant(ctx, "acme", other)) },
	} {
		err := call()
		var de *shardline.Error
		if !errors.Is(err, shardline.ErrTenantHasData) || !errors.As(err, &de) ||
			de.Message != "tenant acme has rows on shard "+string(home)+" (in public.orders): pinning it to shard "+string(other)+" would route it away from its data; nothing changed" {
			t.Errorf("%s acme onto %s = %v, want ErrTenantHasData naming the table", name, other, err)
		}
		if v, err := m.ShowTenant(ctx, "acme"); err != nil || v.Shard != home {
			t.Errorf("after the refused %s: %+v, %v", name, v, err)
		}
	}

	// Pinned in place, then moved off its slot's shard by hand (the rows
	// go with it): unpinning would route it away from them.
	if v, err := m.PinTenant(ctx, "acme", ""); err != nil || v.Shard != home || v.Note != "pinned tenant acme to its current shard "+string(home) {
		t.Fatalf("pin in place = %+v, %v", v, err)
	}
	if err := postgres.ApplySchema(ctx, p.Shards[home].Primary.DSN, "DELETE FROM orders"); err != nil {
		t.Fatal(err)
	}
	if v, err := m.PinTenant(ctx, "acme", other); err != nil || v.Shard != other || v.Note != "pinned tenant acme to shard "+string(other)+" (it had no rows on "+string(home)+")" {
		t.Fatalf("pin without rows = %+v, %v", v, err)
	}
	if err := postgres.ApplySchema(ctx, p.Shards[other].Primary.DSN, "INSERT INTO orders VALUES ('acme', 1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UnpinTenant(ctx, "acme"); !errors.Is(err, shardline.ErrTenantHasData) {
		t.Errorf("unpin back to %s with rows on %s = %v, want ErrTenantHasData", home, other, err)
	}
	if v, err := m.ShowTenant(ctx, "acme"); err != nil || v.Shard != other || !v.Pinned {
		t.Errorf("after the refused unpin: %+v, %v", v, err)
	}
}
