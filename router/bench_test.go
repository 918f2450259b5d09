package router

import (
	"bufio"
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
)

// Hot-path benchmarks. Run with: go test -run XXX -bench . -benchmem ./router

func BenchmarkClassifySelect(b *testing.B) {
	q := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;")
	b.ReportAllocs()
	for b.Loop() {
		_ = classify(q)
	}
}

func BenchmarkCommentTenantNone(b *testing.B) {
	q := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = commentTenant(q)
	}
}

func BenchmarkCommentTenant(b *testing.B) {
	q := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48213 /*tenant='acme',action='show'*/")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = commentTenant(q)
	}
}

func BenchmarkPlacementLocate(b *testing.B) {
	p := &shardline.Placement{Slots: shardline.EvenSlots([]shardline.ShardID{"s1", "s2"}),
		Shards: map[shardline.ShardID]shardline.Shard{"s1": {ID: "s1"}, "s2": {ID: "s2"}}, Overrides: map[shardline.TenantID]shardline.ShardID{}}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Locate("tenant-1234")
	}
}

// BenchmarkMessageRelay reads protocol messages and writes them on, as the
// router does for every server response.
func BenchmarkMessageRelay(b *testing.B) {
	var src bytes.Buffer
	row := appendMsg(nil, 'D', bytes.Repeat([]byte{1}, 100))
	for range 1000 {
		src.Write(row)
	}
	data := src.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	out := bufio.NewWriterSize(discard{}, 32<<10)
	for b.Loop() {
		r := newMsgReader(bytes.NewReader(data), 32<<10)
		for {
			typ, body, err := r.next()
			if err != nil {
				break
			}
			writeMsg(out, typ, body)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkSelectThroughRouter and BenchmarkSelectDirect run the same
// simple-protocol query through the router and straight to the shard, one
// client, side by side: the difference is the router's added latency.
func BenchmarkSelectThroughRouter(b *testing.B) {
	benchSelect(b, routerDSN("options=-c%20shardline.tenant%3Dbench"))
}

func BenchmarkSelectDirect(b *testing.B) {
	if testing.Short() {
		b.Skip("needs the test cluster")
	}
	benchSelect(b, env.pg.Shards()[0].Primary.DSN)
}

func benchSelect(b *testing.B, dsn string) {
	if testing.Short() {
		b.Skip("needs the test cluster")
	}
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPoolFor finds the pool of a tenant's primary, as every
// transaction does (the pool exists; nothing is dialed).
func BenchmarkPoolFor(b *testing.B) {
	p := &shardline.Placement{Slots: shardline.EvenSlots([]shardline.ShardID{"s1", "s2"}), Overrides: map[shardline.TenantID]shardline.ShardID{},
		Shards: map[shardline.ShardID]shardline.Shard{
			"s1": {ID: "s1", Primary: shardline.Member{Name: "s1-primary", DSN: "postgres://postgres@127.0.0.1:1/app"}},
			"s2": {ID: "s2", Primary: shardline.Member{Name: "s2-primary", DSN: "postgres://postgres@127.0.0.1:2/app"}}}}
	r, err := New(Config{Placement: staticPlacement{p}, Auth: AuthTrust, Loops: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for loop := range 2 {
		for _, sh := range []shardline.ShardID{"s1", "s2"} {
			if _, err := r.poolFor(p, sh, loop); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.poolFor(p, "s2", 1); err != nil {
			b.Fatal(err)
		}
	}
}
