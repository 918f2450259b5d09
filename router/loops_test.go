package router

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPoolShare(t *testing.T) {
	for _, c := range []struct{ size, n int }{{20, 1}, {20, 2}, {3, 2}, {7, 3}, {5, 5}, {10000, 7}} {
		sum := 0
		for i := range c.n {
			share := poolShare(c.size, c.n, i)
			if share < c.size/c.n || share > c.size/c.n+1 {
				t.Errorf("poolShare(%d, %d, %d) = %d, want %d or one more", c.size, c.n, i, share, c.size/c.n)
			}
			if i > 0 && share > poolShare(c.size, c.n, i-1) {
				t.Errorf("poolShare(%d, %d, %d) = %d: more than loop %d's", c.size, c.n, i, share, i-1)
			}
			sum += share
		}
		if sum != c.size {
			t.Errorf("poolShare(%d, %d, ...) sums to %d, want %d", c.size, c.n, sum, c.size)
		}
	}
}

func TestLoopsConfig(t *testing.T) {
	for _, c := range []struct {
		loops, pool int
		ok          bool
	}{{0, 20, true}, {1, 1, true}, {2, 20, true}, {4, 4, true}, {5, 4, false}, {-1, 20, false}, {maxLoops + 1, 10000, false}} {
		cfg := Config{Placement: env.watcher, Auth: AuthTrust, Loops: c.loops, PoolSize: c.pool}
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Loops %d, PoolSize %d: Validate() = %v, want ok %v", c.loops, c.pool, err, c.ok)
		}
	}
}

// With two loops, sessions take turns between them and each loop's pools
// hold its share of the pool size: loop 0 two of three server connections,
// loop 1 one. A session of loop 1 waits for loop 1's connection even while
// loop 0 has one free, and routing works on both.
func TestLoopsSplitSessionsAndPools(t *testing.T) {
	r, dsn := startRouter(t, Config{Loops: 2, PoolSize: 3, WaitTimeout: time.Second})
	if n := testutil.ToFloat64(r.metrics.loops); n != 2 {
		t.Errorf("shardline_router_loops %v, want 2", n)
	}
	ctx := testCtx(t)
	var conns []*pgx.Conn
	for range 4 { // connected one after another: loops 0, 1, 0, 1
		conns = append(conns, connectDSN(t, dsn))
	}
	shard := shardOf(t, "acme")
	primary := direct(t, shard)
	pids := map[uint32]bool{}
	for i, c := range conns[:3] { // sessions 0 and 2 on loop 0, 1 on loop 1
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var pid uint32
		var bound string
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid(), current_setting('shardline.tenant')").Scan(&pid, &bound); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if bound != "acme" {
			t.Errorf("session %d bound to tenant %q, want acme", i, bound)
		}
		var onPrimary bool
		if err := primary.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)", pid).Scan(&onPrimary); err != nil || !onPrimary {
			t.Errorf("session %d's server process %d is not on shard %s's primary (%v)", i, pid, shard, err)
		}
		pids[pid] = true
	}
	if len(pids) != 3 {
		t.Fatalf("three open transactions on %d server connections, want 3", len(pids))
	}
	sizes := map[int]int{}
	for loop := range r.pools {
		for _, p := range *r.pools[loop].Load() {
			if !p.replica && p.shard == shard {
				sizes[loop] += p.max
				if got := p.inUse(); (loop == 0 && got != 2) || (loop == 1 && got != 1) {
					t.Errorf("loop %d's pool has %d connections in use, want %d", loop, got, 2-loop)
				}
			}
		}
	}
	if sizes[0] != 2 || sizes[1] != 1 {
		t.Errorf("pool sizes by loop %v, want loop 0: 2, loop 1: 1", sizes)
	}
	// Session 3 is loop 1's second: its pool is full.
	_, err := conns[3].Exec(ctx, "SELECT 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeTooManyConnections {
		t.Fatalf("loop 1's second transaction with its one connection held: %v, want SQLSTATE %s", err, codeTooManyConnections)
	}
}
