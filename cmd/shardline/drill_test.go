package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

func runDrillFor(t *testing.T, info upInfo, d time.Duration) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c := &drillCommand{
		Client: api.NewClient(info.AdminURL, nil), RouterDSN: info.RouterDSN,
		Duration: d, Workers: 2, MaxLag: 500 * time.Millisecond, Stdout: &out, Stderr: &bytes.Buffer{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	err := c.Run(ctx)
	return out.String(), err
}

// TestDrillReplicaLag runs the drill briefly against a real cluster: no
// stale read, no missed write.
func TestDrillReplicaLag(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUp(t, pgtest.Dir(t), 2, 1)
	out, err := runDrillFor(t, info, 4*time.Second)
	t.Log(out)
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if !strings.Contains(out, "stale reads               0") || !strings.Contains(out, "read-your-writes misses   0") {
		t.Fatalf("drill report:\n%s", out)
	}
}

// TestDrillCatchesMissingTokens is the drill's negative control: with
// read-your-writes tokens turned off in the router, it must report misses
// and fail.
func TestDrillCatchesMissingTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUpWith(t, pgtest.Dir(t), 1, 1, func(c *upCommand) { c.NoWriteTokens = true })
	out, err := runDrillFor(t, info, 4*time.Second)
	t.Log(out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "read-your-writes miss") {
		t.Fatalf("drill without tokens: err %v, want a read-your-writes violation", err)
	}
}

// TestDrillUsesTheClusterRouter runs the drill against a cluster on other
// ports than the defaults, named only by SHARDLINE_ADMIN: the drill learns
// the router from the admin API. With a router it cannot reach it fails
// before it touches the cluster, with its own exit status, not as a broken
// invariant.
func TestDrillUsesTheClusterRouter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUp(t, pgtest.Dir(t), 1, 1)

	r := runCLI(t, info.AdminURL, "drill", "replica-lag", "--duration", "2s", "--workers", "1")
	t.Log(r.stdout, r.stderr)
	r.want(t, 0, []string{"stale reads               0", "read-your-writes misses   0", "session errors            0"}, nil)

	st, err := api.NewClient(info.AdminURL, nil).Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.RouterDSN != info.RouterDSN {
		t.Errorf("status router_dsn = %q, want %q", st.RouterDSN, info.RouterDSN)
	}

	// The drill tables are gone: a drill that cannot run must not create
	// them, nor pause replay.
	ctx := t.Context()
	primary, err := pgx.Connect(ctx, st.Shards[0].Primary.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	if _, err := primary.Exec(ctx, "DROP TABLE shardline_drill_heartbeat, shardline_drill_rw"); err != nil {
		t.Fatal(err)
	}
	dead := "postgres://postgres@" + freeAddr(t) + "/app?sslmode=disable"
	r = runCLI(t, info.AdminURL, "drill", "replica-lag", "--duration", "2s", "--router", dead)
	r.want(t, 3, nil, []string{"cannot connect to the router", dead})
	if strings.Contains(r.stderr, "invariant") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("unreachable router: want one line that is not about invariants, got:\n%s", r.stderr)
	}
	var exists bool
	if err := primary.QueryRow(ctx, "SELECT to_regclass('shardline_drill_heartbeat') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("the drill that could not run created its tables (%v, %v)", exists, err)
	}

	// Interrupted at its first progress line (as by Ctrl-C), the drill is
	// not a pass.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &drillCommand{Client: api.NewClient(info.AdminURL, nil), Duration: time.Minute, Workers: 1, MaxLag: 500 * time.Millisecond,
		Stdout: &bytes.Buffer{}, Stderr: cancelOnWrite(cancel)}
	err = c.Run(dctx)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != drillNotRun || !strings.Contains(ee.msg, "drill interrupted after") {
		t.Errorf("interrupted drill: %v, want exit %d 'drill interrupted'", err, drillNotRun)
	}
}

// cancelOnWrite is a writer that calls cancel on its first write.
type cancelOnWrite context.CancelFunc

func (c cancelOnWrite) Write(b []byte) (int, error) {
	c()
	return len(b), nil
}
