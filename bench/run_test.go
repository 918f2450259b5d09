package bench

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestRunPgBouncer runs a tiny matrix for real against a throwaway
// PostgreSQL, directly and through the bench's own PgBouncer: every
// pgbench workload, the idle one, the unsupported cell, two endpoints for
// one target, and the figures each cell must have. (The router is measured
// for real in cmd/shardline's bench test.)
func TestRunPgBouncer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	requirePgBouncer(t)
	dsn := startPostgres(t)
	ctx := t.Context()
	dir := pgtest.Dir(t)
	b, err := StartPgBouncer(ctx, PgBouncerConfig{Dir: filepath.Join(dir, "pgbouncer"), Server: dsn, PoolSize: 4, Logger: pgtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	direct := Target{Name: "direct", Endpoints: []Endpoint{{DSN: dsn}}}
	bouncer := Target{Name: "pgbouncer", Endpoints: []Endpoint{b.Endpoint()}, ProxyPID: b.PID(),
		Unsupported: map[string]string{WorkloadSelectPrepared: "no prepared statements in transaction mode"}}
	// Two endpoints, as the router's two-shard target has: both reach the
	// same server here.
	twice := Target{Name: "pgbouncer-x2", Endpoints: []Endpoint{b.Endpoint(), b.Endpoint()}, ProxyPID: b.PID(), Unsupported: bouncer.Unsupported}

	pb, err := NewPgbench("", slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Check(ctx, "direct", direct.Endpoints[0]); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Check before Init = %v, want ErrNotInitialized", err)
	}
	if err := pb.Init(ctx, "direct", direct.Endpoints[0], 1); err != nil {
		t.Fatalf("Init: %v", err)
	}

	var progress strings.Builder
	rep, err := Run(ctx, Config{
		Targets:   []Target{direct, bouncer, twice},
		Baselines: []string{"direct", "pgbouncer", "absent"},
		Workloads: []string{WorkloadSelectSimple, WorkloadSelectPrepared, WorkloadWrite, WorkloadChurn, WorkloadIdle},
		Clients:   []int{1, 2},
		Duration:  time.Second,
		Rounds:    1,
		IdleConns: 50,
		Warmup:    time.Second,
		WorkDir:   filepath.Join(dir, "work"),
		Progress:  &progress,
	})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", table.String())

	for _, ti := range rep.Targets {
		if (ti.Name == "direct") != (ti.IdleCPUPercent == nil) {
			t.Errorf("target %s: idle CPU %v", ti.Name, ti.IdleCPUPercent)
		}
	}
	if len(rep.Cells) != 4*2+1 || strings.Join(rep.Baselines, ",") != "direct,pgbouncer" || !strings.Contains(rep.Environment.Pgbench, "pgbench") {
		t.Fatalf("report: %d cells, baselines %q", len(rep.Cells), rep.Baselines)
	}
	// 4 pgbench workloads x 2 client counts x 3 targets, minus the
	// unsupported prepared cells of both PgBouncer targets (4) and the
	// other cells of pgbouncer-x2 at 1 client (3), plus idle for
	// pgbouncer (pgbouncer-x2 is the same process); 3 warm-up lines, 2
	// idle CPU lines.
	if n := strings.Count(progress.String(), "\n"); n != 24-4-3+1+3+2 {
		t.Errorf("%d progress lines, want 23", n)
	}
	// The idle workload runs first.
	if i, j := strings.Index(progress.String(), " idle "), strings.Index(progress.String(), "select-simple "); i < 0 || i > j {
		t.Errorf("the idle workload did not run first:\n%s", progress.String())
	}
	if rep.FailedCells() != 0 {
		t.Errorf("%d failed cells:\n%s", rep.FailedCells(), table.String())
	}
	for _, c := range rep.Cells {
		for _, tc := range c.Targets {
			switch {
			case c.Workload == WorkloadIdle && tc.Target != "pgbouncer":
				if tc.Status != StatusNotApplicable {
					t.Errorf("idle %s: %+v", tc.Target, tc)
				}
			case c.Workload == WorkloadIdle:
				if tc.Status != StatusOK || tc.KiBPerConn == nil || tc.Runs[0].Idle.Conns != 50 || tc.Runs[0].Idle.RSSAfterKiB <= 0 {
					t.Errorf("idle %s: %+v", tc.Target, tc)
				}
			case c.Workload == WorkloadSelectPrepared && tc.Target != "direct":
				if tc.Status != StatusUnsupported || len(tc.Runs) != 0 {
					t.Errorf("prepared pgbouncer: %+v", tc)
				}
			case tc.Target == "pgbouncer-x2" && c.Clients == 1:
				if tc.Status != StatusNotApplicable {
					t.Errorf("pgbouncer-x2 at 1 client: %+v", tc)
				}
			default:
				if tc.Status != StatusOK || tc.TPS <= 0 || tc.P50Ms <= 0 || tc.P99Ms < tc.P50Ms || tc.Runs[0].Transactions <= 0 {
					t.Errorf("%s c=%d %s: %+v", c.Workload, c.Clients, tc.Target, tc)
				}
				if (tc.Target == "direct") != (tc.CPUPerTxnUs == nil) {
					t.Errorf("%s c=%d %s: proxy CPU %v", c.Workload, c.Clients, tc.Target, tc.CPUPerTxnUs)
				}
				// The machine's CPU includes the proxy's: readings are in
				// ticks of 10 ms, per CPU for the machine, so allow a few.
				run := tc.Runs[0]
				switch m := run.MachineCPUPerTxnUs; {
				case m == nil || *m <= 0 || run.IdleShare == nil || *run.IdleShare < 0 || *run.IdleShare >= 1:
					t.Errorf("%s c=%d %s: machine CPU %v, idle %v", c.Workload, c.Clients, tc.Target, m, run.IdleShare)
				case run.CPUPerTxnUs != nil && *m < *run.CPUPerTxnUs-4*10e3/float64(run.Transactions):
					t.Errorf("%s c=%d %s: machine CPU %.1f µs/txn below the proxy's %.1f", c.Workload, c.Clients, tc.Target, *m, *run.CPUPerTxnUs)
				}
				if tc.Ratios["direct"].TPS == nil {
					t.Errorf("%s c=%d %s: no ratio to direct", c.Workload, c.Clients, tc.Target)
				}
				if tc.Target == "pgbouncer-x2" && len(tc.Runs[0].Pgbench) != 2 {
					t.Errorf("pgbouncer-x2: %d pgbench summaries, want 2", len(tc.Runs[0].Pgbench))
				}
			}
		}
	}
}

// TestRunRecordsFailures checks that a target pgbench cannot reach is
// recorded in its cells, with pgbench's complaint, and the matrix goes on.
func TestRunRecordsFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dsn := startPostgres(t)
	ctx := t.Context()
	readies := 0
	good := Target{Name: "direct", Endpoints: []Endpoint{{DSN: dsn}}, Ready: func(context.Context) error { readies++; return nil }}
	unready := Target{Name: "unready", Endpoints: []Endpoint{{DSN: dsn}}, Ready: func(context.Context) error { return errors.New("replica behind") }}
	pb, err := NewPgbench("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Init(ctx, "direct", good.Endpoints[0], 1); err != nil {
		t.Fatalf("Init: %v", err)
	}
	closed := Target{Name: "nowhere", Endpoints: []Endpoint{{DSN: "postgres://postgres@127.0.0.1:" + strconv.Itoa(testFreePort(t)) + "/postgres?sslmode=disable&connect_timeout=5"}}}
	rep, err := Run(ctx, Config{Targets: []Target{good, closed, unready}, Workloads: []string{WorkloadSelectExtended}, Clients: []int{1, 2},
		Duration: time.Second, Rounds: 1, Warmup: -1, IdleSample: -1})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if rep.FailedCells() != 4 {
		t.Errorf("FailedCells = %d, want 4", rep.FailedCells())
	}
	if readies != 2 {
		t.Errorf("Ready called %d times, want once per run (2)", readies)
	}
	for _, c := range rep.Cells {
		if d := c.Target("direct"); d.Status != StatusOK || d.TPS <= 0 {
			t.Errorf("direct c=%d: %+v", c.Clients, d)
		}
		n := c.Target("nowhere")
		if n.Status != StatusFailed || !strings.Contains(n.Reason, `target "nowhere" workload select-extended`) || !strings.Contains(n.Reason, "Connection refused") {
			t.Errorf("nowhere c=%d: %+v", c.Clients, n)
		}
		if u := c.Target("unready"); u.Status != StatusFailed || !strings.Contains(u.Reason, "replica behind") {
			t.Errorf("unready c=%d: %+v", c.Clients, u)
		}
	}
}

// TestRunCancel checks that cancelling the context stops pgbench promptly
// and returns the partial report.
func TestRunCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dsn := startPostgres(t)
	target := Target{Name: "direct", Endpoints: []Endpoint{{DSN: dsn}}}
	if err := Init(t.Context(), target.Endpoints[0], 1); err != nil {
		t.Fatalf("Init: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{Targets: []Target{target}, Workloads: []string{WorkloadSelectSimple}, Clients: []int{1}, Duration: 30 * time.Second, Rounds: 1, Warmup: -1, IdleSample: -1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want context.DeadlineExceeded", err)
	}
	if rep == nil || rep.Interrupted == "" {
		t.Errorf("partial report = %+v, want one marked interrupted", rep)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
}

func TestRoundOrder(t *testing.T) {
	if got, want := roundOrder(3, 1), []int{0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("round 1: %v, want the configured order %v", got, want)
	}
	if got, want := roundOrder(3, 2), []int{1, 2, 0}; !slices.Equal(got, want) {
		t.Fatalf("round 2: %v, want %v", got, want)
	}
	for n := 1; n <= 5; n++ {
		positions := make([]map[int]bool, n) // positions[target]: the positions it ran in
		for i := range positions {
			positions[i] = map[int]bool{}
		}
		for round := 1; round <= n; round++ {
			order := roundOrder(n, round)
			seen := map[int]bool{}
			for pos, target := range order {
				if seen[target] {
					t.Fatalf("n=%d round %d: %v runs target %d twice", n, round, order, target)
				}
				seen[target] = true
				positions[target][pos] = true
			}
			if len(seen) != n {
				t.Fatalf("n=%d round %d: %v, want every target once", n, round, order)
			}
		}
		for target, ps := range positions {
			if len(ps) != n {
				t.Fatalf("n=%d: target %d ran in positions %v over %d rounds, want each once", n, target, ps, n)
			}
		}
	}
}

// Runs of a target that starts a server per client last at least
// manyServersDuration at many clients; other targets' runs, and few
// clients, keep the settings' duration.
func TestRunDuration(t *testing.T) {
	direct := Target{Name: "direct", ConnectsServers: true}
	proxy := Target{Name: "router"}
	for _, tt := range []struct {
		t       Target
		clients int
		d, want time.Duration
	}{
		{direct, 256, 3 * time.Second, manyServersDuration},
		{direct, 256, 30 * time.Second, 30 * time.Second},
		{direct, manyServersClients, 3 * time.Second, 3 * time.Second},
		{proxy, 256, 3 * time.Second, 3 * time.Second},
	} {
		if got := runDuration(tt.t, tt.clients, tt.d); got != tt.want {
			t.Errorf("runDuration(%s, %d, %v) = %v, want %v", tt.t.Name, tt.clients, tt.d, got, tt.want)
		}
	}
}

func TestSchedule(t *testing.T) {
	// Cell 0 is idle, cell 1 runs targets 0 and 2 (1 is unsupported there),
	// cell 2 runs target 1 only.
	runnable := [][]int{{0, 1}, {0, 2}, {1}}
	got := schedule(runnable, true, 2)
	want := []step{
		{0, 1, 0}, {0, 1, 1}, {0, 2, 1}, {0, 2, 0}, // idle: all its rounds first
		{1, 1, 0}, {1, 1, 2}, {2, 1, 1}, // round 1 of every other cell
		{1, 2, 2}, {1, 2, 0}, {2, 2, 1}, // then round 2, rotated
	}
	if !slices.Equal(got, want) {
		t.Fatalf("schedule = %v\nwant       %v", got, want)
	}
	// Without an idle cell the first cell takes turns with the others.
	got = schedule(runnable[1:], false, 2)
	want = []step{{0, 1, 0}, {0, 1, 2}, {1, 1, 1}, {0, 2, 2}, {0, 2, 0}, {1, 2, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("no idle cell: schedule = %v\nwant %v", got, want)
	}
	if got := schedule(nil, true, 3); len(got) != 0 {
		t.Fatalf("no cells: schedule = %v, want none", got)
	}
}
