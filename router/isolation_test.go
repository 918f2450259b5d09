package router

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Invariant 3 (ARCHITECTURE.md) under concurrency: sessions of several
// tenants on one shard share fewer server connections than there are
// sessions, so connections change hands between tenants all the time, with
// answers bigger than the loop's read buffer and a server connection's
// write buffer, in the simple and the extended protocol (unnamed and named
// statements). Every row a session reads is its own tenant's, and every
// answer is whole: a stale tenant binding, or bytes of one session's answer
// delivered to another (output queued on a connection handed back to the
// pool, a receive completing for the wrong session), would show here.
func TestConcurrentSessionsSeeOnlyTheirTenantsRows(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS iso_rows (tenant_id text NOT NULL, n int NOT NULL, pad text NOT NULL);
DELETE FROM iso_rows;`)
	const (
		tenants = 2*testPoolSize - 1
		rows    = 24
		rounds  = 25
	)
	// Tenants on the shard of the first, so that they share its pool.
	names := []string{"iso-0"}
	for i := 1; len(names) < tenants; i++ {
		if tn := fmt.Sprintf("iso-%d", i); shardOf(t, tn) == shardOf(t, names[0]) {
			names = append(names, tn)
		}
	}
	// A row's pad names its tenant and row: about 2 KiB, so an answer is
	// about 50 KiB.
	pad := func(tenant string, n int) string {
		return strings.Repeat(fmt.Sprintf("%s/%d;", tenant, n), 2048/len(tenant))
	}
	ctx := testCtx(t)
	conns := make([]*pgx.Conn, tenants)
	for i, tenant := range names {
		conns[i] = connect(t, "options=-c%20shardline.tenant%3D"+tenant)
		for n := range rows {
			if _, err := conns[i].Exec(ctx, "INSERT INTO iso_rows VALUES ($1, $2, $3)", tenant, n, pad(tenant, n)); err != nil {
				t.Fatalf("insert as %s: %v", tenant, err)
			}
		}
	}

	var wg sync.WaitGroup
	for i, tenant := range names {
		wg.Go(func() {
			c := conns[i]
			for round := range rounds {
				// Simple protocol; extended with an unnamed statement, in one
				// round trip and in two; extended with a named one (pgx's
				// default).
				modes := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
					pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheStatement}
				mode := modes[round%len(modes)]
				// No tenant in the statement: the session's tenant binds
				// the server connection, and the filter reads that binding.
				got, err := c.Query(ctx, "SELECT tenant_id, n, pad FROM iso_rows WHERE tenant_id = current_setting('shardline.tenant') ORDER BY n", mode)
				if err != nil {
					t.Errorf("%s round %d: %v", tenant, round, err)
					return
				}
				seen := 0
				for got.Next() {
					var owner, p string
					var n int
					if err := got.Scan(&owner, &n, &p); err != nil {
						t.Errorf("%s round %d: scan: %v", tenant, round, err)
						break
					}
					if owner != tenant || n != seen || p != pad(tenant, n) {
						t.Errorf("%s round %d: row %d is (%s, %d, %d bytes of pad), want its own row %d", tenant, round, seen, owner, n, len(p), seen)
					}
					seen++
				}
				got.Close()
				if err := got.Err(); err != nil {
					t.Errorf("%s round %d: %v", tenant, round, err)
					return
				}
				if seen != rows {
					t.Errorf("%s round %d: %d rows, want %d", tenant, round, seen, rows)
				}
			}
		})
	}
	wg.Wait()
}

// Invariant 3 on the long-pipeline path: sessions of several tenants on one
// shard, fewer server connections than sessions, each sending pgx batches
// long enough that the router relays them in pieces (drainAfter) while the
// others' batches run. Every row names the session's own tenant binding and
// comes in order: an early drain that released the server connection, or
// relayed another session's answers, would show here.
func TestConcurrentLongPipelinesSeeOnlyTheirTenant(t *testing.T) {
	const (
		tenants = 2*testPoolSize - 1
		n       = 3000 // about 190 KiB of extended-protocol messages a batch: several drains
		batches = 3
	)
	names := []string{"pipe-0"}
	for i := 1; len(names) < tenants; i++ {
		if tn := fmt.Sprintf("pipe-%d", i); shardOf(t, tn) == shardOf(t, names[0]) {
			names = append(names, tn)
		}
	}
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for _, tenant := range names {
		c := connect(t, "options=-c%20shardline.tenant%3D"+tenant)
		wg.Go(func() {
			for range batches {
				b := &pgx.Batch{}
				for i := range n {
					b.Queue("SELECT $1::int, current_setting('shardline.tenant')", i)
				}
				br := c.SendBatch(ctx, b)
				for i := range n {
					var got int
					var bound string
					if err := br.QueryRow().Scan(&got, &bound); err != nil || got != i || bound != tenant {
						t.Errorf("%s: batch item %d: %d bound to %q, %v", tenant, i, got, bound, err)
						br.Close()
						return
					}
				}
				if err := br.Close(); err != nil {
					t.Errorf("%s: %v", tenant, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
