package router

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestBatchPipeline(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dbatch")
	ctx := testCtx(t)
	b := &pgx.Batch{}
	for i := 0; i < 20; i++ {
		b.Queue("SELECT $1::int * 2", i)
	}
	b.Queue("SELECT 1/0")
	b.Queue("SELECT 3")
	br := c.SendBatch(ctx, b)
	for i := 0; i < 20; i++ {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != i*2 {
			t.Fatalf("batch item %d: %d %v", i, n, err)
		}
	}
	if _, err := br.Exec(); pgCode(err) != "22012" {
		t.Fatalf("batch error item: %v", err)
	}
	if err := br.Close(); err == nil {
		t.Log("batch close after error returned nil")
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("after batch: %v", err)
	}
}

// TestLargeBatch sends batches whose statements and results are far
// larger than the sockets hold: pgx writes a whole batch before it reads
// (reading in the background once a write blocks), and a server that
// cannot send its results stops reading. So the router must relay results
// while it forwards the rest of the batch, or the two stall. Each batch
// runs against the shard's primary directly too, which must pass.
func TestLargeBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, size int
	}{
		{"many small results", 20000, 10}, // about 1.4 MB of results, 1 MB of statements
		{"large results", 4000, 2000},     // about 8 MB of results
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(t *testing.T, c *pgx.Conn) {
				b := &pgx.Batch{}
				for i := range tc.n {
					b.Queue("SELECT $1::int, repeat('x', $2)", i, tc.size)
				}
				br := c.SendBatch(testCtx(t), b)
				for i := range tc.n {
					var got int
					var text string
					if err := br.QueryRow().Scan(&got, &text); err != nil || got != i || len(text) != tc.size {
						t.Fatalf("batch item %d: %d, %d bytes, %v", i, got, len(text), err)
					}
				}
				if err := br.Close(); err != nil {
					t.Fatal(err)
				}
			}
			t.Run("direct", func(t *testing.T) { run(t, direct(t, "s1")) })
			t.Run("router", func(t *testing.T) { run(t, connect(t, "options=-c%20shardline.tenant%3Dbigbatch")) })
		})
	}
	// An error half-way: the server skips the rest up to the Sync, the
	// router after its own drain as well, and the session goes on.
	t.Run("error half-way", func(t *testing.T) {
		c := connect(t, "options=-c%20shardline.tenant%3Dbigbatch")
		const n = 10000
		b := &pgx.Batch{}
		for i := range 2 * n {
			if i == n {
				b.Queue("SELECT 1/0")
				continue
			}
			b.Queue("SELECT $1::int", i)
		}
		br := c.SendBatch(testCtx(t), b)
		for i := range n {
			var got int
			if err := br.QueryRow().Scan(&got); err != nil || got != i {
				t.Fatalf("batch item %d: %d, %v", i, got, err)
			}
		}
		if _, err := br.Exec(); pgCode(err) != "22012" {
			t.Fatalf("item %d: %v, want division by zero", n, err)
		}
		if err := br.Close(); err == nil {
			t.Error("batch close after the error: nil, want the error")
		}
		var got int
		if err := c.QueryRow(testCtx(t), "SELECT 5").Scan(&got); err != nil || got != 5 {
			t.Fatalf("after the batch: %d, %v", got, err)
		}
	})
}
