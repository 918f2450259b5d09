package router

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shardline/shardline/internal/netloop"
)

// startRouter runs a router of its own on the test cluster.
func startRouter(t *testing.T, cfg Config) (*Router, string) {
	t.Helper()
	needCluster(t)
	cfg.Placement = env.watcher
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.NoIOUring = testNoIOUring
	if cfg.Loops == 0 && testLoops <= cfg.PoolSize {
		cfg.Loops = testLoops
	}
	r, addr := serveRouter(t, cfg)
	return r, "postgres://app@" + addr + "/app?sslmode=disable&options=-c%20shardline.tenant%3Dacme"
}

// serveRouter makes a router of cfg and serves it on a loopback port until
// the test ends; it returns the router and its address.
func serveRouter(t *testing.T, cfg Config) (*Router, string) {
	t.Helper()
	if cfg.BindingToken == "" {
		cfg.BindingToken = env.pg.BindingToken()
	}
	if cfg.Auth == "" && cfg.Users == nil {
		cfg.Auth = AuthTrust // the tests of authentication give their users
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ln) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return r, ln.Addr().String()
}

// waitFor polls cond (a metric the router updates) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With one server connection, a second session's transaction waits on the
// event loop until the first commits, then gets the connection handed over.
func TestPoolWaitHandsOverOnRelease(t *testing.T) {
	r, dsn := startRouter(t, Config{PoolSize: 1, WaitTimeout: 30 * time.Second})
	ctx := testCtx(t)
	a, b := connectDSN(t, dsn), connectDSN(t, dsn)

	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pidA int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pidA); err != nil {
		t.Fatal(err)
	}
	waits := r.metrics.forShard(string(shardOf(t, "acme"))).waits
	before := testutil.ToFloat64(waits)
	got := make(chan int, 1)
	errs := make(chan error, 1)
	go func() {
		var pid int
		if err := b.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			errs <- err
			return
		}
		got <- pid
	}()
	waitFor(t, "the second session to wait for the pool", func() bool { return testutil.ToFloat64(waits) > before })
	select {
	case pid := <-got:
		t.Fatalf("second session ran (backend %d) while the only connection was in a transaction", pid)
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case pid := <-got:
		if pid != pidA {
			t.Fatalf("second session ran on backend %d, want the released %d", pid, pidA)
		}
	case err := <-errs:
		t.Fatal(err)
	}
}

// A session that waits longer than the pool timeout gets SQLSTATE 53300 and
// stays usable.
func TestPoolWaitTimesOut(t *testing.T) {
	// The timeout also bounds the first transaction's dial, which takes a
	// few hundred milliseconds on a loaded 2-core machine: 200 ms failed
	// there now and then.
	_, dsn := startRouter(t, Config{PoolSize: 1, WaitTimeout: time.Second})
	ctx := testCtx(t)
	a, b := connectDSN(t, dsn), connectDSN(t, dsn)

	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	_, err = b.Exec(ctx, "SELECT 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeTooManyConnections || pe.Hint == "" {
		t.Fatalf("waiting past the pool timeout: %v, want SQLSTATE %s with a hint", err, codeTooManyConnections)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := b.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session after a pool timeout: %d, %v", one, err)
	}
}

// The router's event loop mode follows Config.NoIOUring, its thread's
// scheduling policy Config.NoSchedBatch, and both are reported.
func TestEventLoopMode(t *testing.T) {
	needCluster(t)
	for _, no := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		r, err := New(Config{Placement: env.watcher, Auth: AuthTrust, NoIOUring: no, NoSchedBatch: no, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		want := false
		if !no {
			l, err := netloop.New(netloop.Config{})
			if err != nil {
				t.Fatal(err)
			}
			want = l.IOUring()
			l.Close()
			l.Run()
		}
		gauge := testutil.ToFloat64(r.metrics.ioUring)
		if r.IOUring() != want || (gauge == 1) != want {
			t.Errorf("NoIOUring %v: IOUring() %v, gauge %v; want %v", no, r.IOUring(), gauge, want)
		}
		// The test's threads run in the default policy, which the loop's
		// leaves for SCHED_BATCH unless told not to.
		batch := testutil.ToFloat64(r.metrics.schedBatch)
		if r.loops.SchedBatch() == no || (batch == 1) == no {
			t.Errorf("NoSchedBatch %v: SchedBatch() %v, gauge %v; want %v", no, r.loops.SchedBatch(), batch, !no)
		}
		r.Close()
	}
}
