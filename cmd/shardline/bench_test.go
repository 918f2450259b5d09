package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardline/shardline/bench"
	"github.com/shardline/shardline/internal/netloop"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// benchChildEnv, set to 1, makes this test binary act as the shardline
// command: the bench test starts it as its throwaway cluster
// (`shardline up`) and its routers (`shardline router`), as the real bench
// starts its own binary.
const benchChildEnv = "SHARDLINE_BENCH_TEST_CHILD"

func init() {
	if os.Getenv(benchChildEnv) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, &cliEnv{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

func TestBenchFlags(t *testing.T) {
	env := &cliEnv{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	c, err := parseBench(env, []string{"--quick", "--rounds", "2", "--workloads", "select-simple, idle", "--report", "out dir/r.md"})
	if err != nil {
		t.Fatal(err)
	}
	// --quick sets what was not given; --rounds was.
	if c.Duration != 2*time.Second || c.Rounds != 2 || !slices.Equal(c.Clients, []int{32}) || c.Warmup != time.Second ||
		!slices.Equal(c.Workloads, []string{"select-simple", "idle"}) || !slices.Equal(c.Targets, bench.DefaultTargets()) ||
		c.External || c.IdleConns != 1000 || c.PoolSize != 20 {
		t.Errorf("parseBench = %+v", c)
	}
	if want := `shardline bench --quick --rounds 2 --workloads 'select-simple, idle' --report 'out dir/r.md'`; c.Command != want {
		t.Errorf("Command = %s, want %s", c.Command, want)
	}
	c, err = parseBench(env, []string{"--direct", "postgres://x@127.0.0.1/app", "--init=false"})
	if err != nil || !c.External || c.Init != initNever || c.Duration != 10*time.Second || !slices.Equal(c.Clients, []int{1, 8, 32, 256}) {
		t.Errorf("parseBench(--direct) = %+v, %v", c, err)
	}

	// Bad flags and bad settings are usage errors, found before anything
	// starts. (bench.SuiteConfig.Validate's own table test checks each
	// setting; these check that its errors become usage errors.)
	for _, args := range [][]string{
		{"--clients", "1,x"},
		{"extra"},
		{"--init", "maybe"},
		{"-o", "xml"},
		{"--rounds", "0"},
		{"--clients", ""},
		{"--targets", "direct,mysql"},
		{"--idle-conns", "5000"},
		{"--external"},
		{"--direct", "postgres://x@127.0.0.1/app", "--tenant", "a b"},
		{"--direct", "postgres://x@127.0.0.1/app", "--workloads", "select-simple,write-token"},
	} {
		err := runBench(t.Context(), env, args)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bench %q = %v, want a usage error (exit 2)", args, err)
		}
	}
}

// TestBenchFrom renders an earlier run's JSON report again (--from)
// without running anything: the outputs get this version's figures, the
// round-by-round comparison among them. A file that is not a report is a
// usage error.
func TestBenchFrom(t *testing.T) {
	cpu := func(v float64) *float64 { return &v }
	run := func(round int, tps, p50, c float64) bench.RunResult {
		return bench.RunResult{Round: round, TPS: tps, Transactions: int64(tps), P50Ms: p50, P99Ms: 2 * p50, CPUPerTxnUs: cpu(c)}
	}
	rep := bench.Report{StartedAt: time.Now().UTC(), Baselines: []string{"pgbouncer"},
		Targets: []bench.TargetInfo{{Name: "pgbouncer", Proxy: true}, {Name: "router", Proxy: true}},
		Cells: []bench.Cell{{Workload: "select-simple", Clients: 8, Targets: []bench.TargetCell{
			{Target: "pgbouncer", Runs: []bench.RunResult{run(1, 100, 1, 40), run(2, 200, 1, 20)}},
			{Target: "router", Runs: []bench.RunResult{run(1, 110, 0.9, 30), run(2, 180, 1.1, 30)}},
		}}}}
	dir := t.TempDir()
	from := filepath.Join(dir, "old.json")
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(from, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout := &bytes.Buffer{}
	env := &cliEnv{Stdout: stdout, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	md := filepath.Join(dir, "r.md")
	if err := runBench(t.Context(), env, []string{"--from", from, "-o", "json", "--report", md}); err != nil {
		t.Fatal(err)
	}
	got, err := bench.ReadReport(stdout)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Cell("select-simple", 8).Target("router").Paired["pgbouncer"]
	if p.Rounds != 2 || p.TPSHigher != 1 || p.P50Lower != 1 || p.CPULower != 1 {
		t.Errorf("router paired with pgbouncer = %+v", p)
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if want := "| select-simple | 8 | router | pgbouncer | 1.00 (1/2) | 1.00 (1/2) | 1.12 (1/2) |"; !strings.Contains(string(text), want) {
		t.Errorf("report lacks %q:\n%s", want, text)
	}

	notReport := filepath.Join(dir, "x.json")
	if err := os.WriteFile(notReport, []byte(`{"a": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--from", notReport}, {"--from", filepath.Join(dir, "missing.json")}} {
		err := runBench(t.Context(), env, args)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bench %q = %v, want a usage error (exit 2)", args, err)
		}
	}
}

// TestBenchReplicaWorkloads runs the replica workloads for real, tiny:
// two throwaway clusters with a replica per shard (this test binary acting
// as `shardline up`, the second with --no-write-tokens), one round of 1 s
// runs. It checks that the router's counters prove where the work went:
// router-replica's reads on the replica, router-primary's on the primary,
// a token per transaction with tokens and none without; and that both
// clusters stop.
func TestBenchReplicaWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters and pgbench")
	}
	dir := pgtest.Dir(t)
	var stdout, stderr bytes.Buffer
	c := tinyBench(dir, &stdout, &stderr, "replica-read", "write-token")
	err := c.Run(t.Context())
	t.Logf("stderr:\n%s", stderr.String())
	t.Logf("stdout:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	js, err := os.ReadFile(c.JSONPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range rep.Targets {
		names = append(names, ti.Name)
	}
	// No default workload: no default target, no PgBouncer.
	if want := []string{"router-primary", "router-replica", "router-no-tokens", "router-tokens"}; !slices.Equal(names, want) {
		t.Fatalf("targets %q, want %q", names, want)
	}
	if !slices.Equal(rep.Baselines, []string{"router-primary", "router-no-tokens"}) || len(rep.Cells) != 2 || rep.Environment.PgBouncer != "" {
		t.Fatalf("report: baselines %q, %d cells, PgBouncer %q", rep.Baselines, len(rep.Cells), rep.Environment.PgBouncer)
	}
	for _, cell := range rep.Cells {
		if len(cell.Targets) != 2 {
			t.Errorf("%s: %d targets, want 2", cell.Workload, len(cell.Targets))
		}
		for _, tc := range cell.Targets {
			where := cell.Workload + " " + tc.Target
			if tc.Status != bench.StatusOK || tc.TPS <= 0 || tc.CPUPerTxnUs == nil || tc.ReplicaShare == nil || tc.WriteTokensPerTxn == nil {
				t.Errorf("%s: %+v", where, tc)
				continue
			}
			share, tokens := *tc.ReplicaShare, *tc.WriteTokensPerTxn
			switch tc.Target {
			case "router-replica":
				// All but the reads that came before the replica's
				// first sample after a pause; in practice all.
				if share < 0.9 || tokens != 0 {
					t.Errorf("%s: replica share %.3f, tokens/txn %.3f", where, share, tokens)
				}
			case "router-tokens":
				if share != 0 || tokens < 0.95 || tokens > 1.05 {
					t.Errorf("%s: replica share %.3f, tokens/txn %.3f, want 0 and 1", where, share, tokens)
				}
			default:
				if share != 0 || tokens != 0 {
					t.Errorf("%s: replica share %.3f, tokens/txn %.3f, want 0 and 0", where, share, tokens)
				}
			}
			base := map[string]string{"replica-read": "router-primary", "write-token": "router-no-tokens"}[cell.Workload]
			if len(tc.Ratios) != 1 || tc.Ratios[base].TPS == nil {
				t.Errorf("%s: ratios %+v, want one to %s", where, tc.Ratios, base)
			}
		}
	}
	for _, want := range []string{"REPLICA_SHARE", "TPS/router-primary", "TPS/router-no-tokens"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, up := range []string{"up", "up-no-tokens"} {
		if pids := postmasterPIDs(t, filepath.Join(c.Dir, up, "cluster")); len(pids) != 0 {
			t.Errorf("%s: PostgreSQL still running after the bench: pids %v", up, pids)
		}
		if len(postmasterFiles(t, filepath.Join(c.Dir, up, "cluster"))) == 0 {
			t.Errorf("%s: no PostgreSQL data directories: the cluster was not where expected", up)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(c.Dir, "up-no-tokens", "up.log")); !strings.Contains(string(b), "stopped") {
		t.Errorf("up-no-tokens/up.log does not show a clean stop:\n%s", b)
	}
}

// postmasterFiles lists the PostgreSQL data directories of an up cluster.
func postmasterFiles(t *testing.T, dir string) []string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(dir, "pg", "*", "PG_VERSION"))
	return dirs
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"shardline", "bench", "--clients", "1,8", "--report", "a b", "it's", "", "x=y"})
	if want := `shardline bench --clients 1,8 --report 'a b' 'it'\''s' '' x=y`; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

// TestBenchEndToEnd runs the self-contained bench for real, tiny: a
// throwaway cluster (this test binary acting as `shardline up`), a router
// process for each router target (acting as `shardline router`: pool size
// 4 for router, 2 per shard for router-2shards and router-2shards-1server),
// its own PgBouncers (4, and 2 per shard for pgbouncer-2shards), all seven
// targets, one round of select-only in two modes, churn and idle. It checks
// the figures each cell must have, the unsupported cells, that
// direct-2shards and pgbouncer-2shards run only the throughput workloads
// and are compared round by round with direct and with pgbouncer, that
// router-2shards-1server runs only select-simple here and is compared with
// router, the
// Markdown report, and that the routers and the cluster's PostgreSQL
// servers are stopped at the end. (The write workload runs the same code
// path with other pgbench arguments; the bench package's tests run it
// through PgBouncer, and whether the router serves pgbench -N is the
// router's tests' business.)
func TestBenchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster, PgBouncer and pgbench")
	}
	if _, err := bench.FindPgBouncer(""); err != nil {
		t.Fatalf("%v (apt-get install pgbouncer; .ci/run installs it)", err)
	}
	dir := pgtest.Dir(t)
	var stdout, stderr bytes.Buffer
	c := tinyBench(dir, &stdout, &stderr, "select-simple", "select-prepared", "churn", "idle")
	c.Output = "json"
	c.ReportPath = filepath.Join(dir, "report", "latest.md")
	err := c.Run(t.Context())
	t.Logf("stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s", err, stdout.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Cells) != 4 || !slices.Equal(rep.Baselines, []string{"direct", "pgbouncer"}) || len(rep.Targets) != len(bench.AllTargets()) {
		t.Fatalf("report: %d cells, baselines %q, %d targets", len(rep.Cells), rep.Baselines, len(rep.Targets))
	}
	e := rep.Environment
	if e.NProc < 1 || e.GoVersion == "" || !strings.HasPrefix(e.PostgreSQL, "PostgreSQL ") ||
		!strings.HasPrefix(e.PgBouncer, "PgBouncer ") || !strings.Contains(e.Pgbench, "pgbench") {
		t.Errorf("environment = %+v", e)
	}
	// Each router target is measured on a router process of its own, whose
	// event loop runs as this machine allows (the router's own tests check
	// that it takes SCHED_BATCH).
	io := "epoll"
	if l, err := netloop.New(netloop.Config{}); err == nil {
		if l.IOUring() {
			io = "io_uring"
		}
		l.Close()
		l.Run()
	}
	loop := " (event loop: " + io + ", SCHED_BATCH)"
	process := map[string]string{"direct": "", "direct-2shards": "", "router": "shardline router --pool-size 4" + loop, "router-2shards": "shardline router --pool-size 2" + loop,
		"router-2shards-1server": "shardline router --pool-size 2 --cluster bench-one-server" + loop,
		"router-tls":             "shardline router --pool-size 4 --tls-cert --tls-key --tls-required" + loop}
	for _, ti := range rep.Targets {
		want, ok := process[ti.Name]
		if !ok {
			want = rep.Environment.PgBouncer
		}
		if ti.Process != want || ti.Proxy != (want != "") || (ti.IdleCPUPercent != nil) != (want != "") {
			t.Errorf("target %s: process %q, proxy %v, idle CPU %v; want process %q", ti.Name, ti.Process, ti.Proxy, ti.IdleCPUPercent, want)
		}
	}
	if i := slices.IndexFunc(rep.Targets, func(ti bench.TargetInfo) bool { return ti.Name == "router-2shards" }); i < 0 || !strings.HasPrefix(rep.Targets[i].Pool, "2 per shard: 4 in all") {
		t.Errorf("router-2shards pool: targets %+v", rep.Targets)
	}
	if i := slices.IndexFunc(rep.Targets, func(ti bench.TargetInfo) bool { return ti.Name == "pgbouncer-2shards" }); i < 0 ||
		!strings.HasPrefix(rep.Targets[i].Pool, "2 per shard: 4 in all") || !strings.Contains(rep.Targets[i].Description, "database app (shard s1) and app_2 (shard s2)") {
		t.Errorf("pgbouncer-2shards: targets %+v", rep.Targets)
	}
	if i := slices.IndexFunc(rep.Targets, func(ti bench.TargetInfo) bool { return ti.Name == "router-2shards-1server" }); i < 0 ||
		!strings.HasPrefix(rep.Targets[i].Pool, "2 per shard: 4 in all, every one to shard s1's primary") {
		t.Errorf("router-2shards-1server pool: targets %+v", rep.Targets)
	}
	for _, cell := range rep.Cells {
		throughput := cell.Workload == "select-simple" || cell.Workload == "select-prepared"
		for control, against := range map[string]string{"direct-2shards": "direct", "pgbouncer-2shards": "pgbouncer"} {
			tc := cell.Target(control)
			if ran := tc != nil; ran != throughput {
				t.Errorf("%s: %s ran: %v", cell.Workload, control, ran)
			}
			if tc != nil && tc.Status == bench.StatusOK && tc.Paired[against].Rounds != 1 {
				t.Errorf("%s: %s not compared with %s round by round: %+v", cell.Workload, control, against, tc.Paired)
			}
		}
		if r2 := cell.Target("router-2shards"); cell.Workload == "select-simple" && (r2 == nil || r2.Paired["pgbouncer-2shards"].Rounds != 1) {
			t.Errorf("%s: router-2shards not compared with pgbouncer-2shards round by round: %+v", cell.Workload, r2.Paired)
		}
		r1s := cell.Target("router-2shards-1server")
		if ran := r1s != nil; ran != (cell.Workload == "select-simple") {
			t.Errorf("%s: router-2shards-1server ran: %v", cell.Workload, ran)
		}
		if r1s != nil && r1s.Status == bench.StatusOK && r1s.Paired["router"].Rounds != 1 {
			t.Errorf("%s: router-2shards-1server not compared with router round by round: %+v", cell.Workload, r1s.Paired)
		}
		for _, tc := range cell.Targets {
			where := cell.Workload + " " + tc.Target
			switch {
			case cell.Workload == "idle" && tc.Target == "direct":
				if tc.Status != bench.StatusNotApplicable {
					t.Errorf("%s: %+v", where, tc)
				}
			case cell.Workload == "idle":
				if tc.Status != bench.StatusOK || tc.KiBPerConn == nil {
					t.Errorf("%s: %+v", where, tc)
				}
			case cell.Workload == "select-prepared" && strings.HasPrefix(tc.Target, "pgbouncer"):
				if tc.Status != bench.StatusUnsupported || !strings.Contains(tc.Reason, "prepared") {
					t.Errorf("%s: %+v", where, tc)
				}
			default:
				if tc.Status != bench.StatusOK || tc.TPS <= 0 || tc.P50Ms <= 0 || tc.P99Ms < tc.P50Ms {
					t.Errorf("%s: %+v", where, tc)
				}
				if noProxy := tc.Target == "direct" || tc.Target == "direct-2shards"; noProxy != (tc.CPUPerTxnUs == nil) {
					t.Errorf("%s: proxy CPU %v", where, tc.CPUPerTxnUs)
				}
				if tc.Ratios["direct"].TPS == nil {
					t.Errorf("%s: no TPS ratio to direct", where)
				}
				// Two clients and two threads: every target runs two pgbench
				// processes (one per thread; router-2shards one per tenant).
				if n := len(tc.Runs[0].Pgbench); n != 2 {
					t.Errorf("%s: %d pgbench processes, want 2", where, n)
				}
			}
		}
	}
	if js, err := os.ReadFile(c.JSONPath); err != nil || !bytes.Equal(js, stdout.Bytes()) {
		t.Errorf("JSON report file differs from stdout (%v)", err)
	}
	md, err := os.ReadFile(c.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shardline bench (test)", "| PgBouncer | PgBouncer ", "### select-simple", "| 2 | router-2shards |", "| 2 | direct-2shards |", "| 2 | pgbouncer-2shards |", "### idle",
		"| router | shardline router --pool-size 4" + loop + " | 4 to shard s1, over "} {
		if !strings.Contains(string(md), want) {
			t.Errorf("Markdown report lacks %q:\n%s", want, md)
		}
	}
	if pids := postmasterPIDs(t, filepath.Join(c.Dir, "up", "cluster")); len(pids) != 0 {
		t.Errorf("PostgreSQL still running after the bench: pids %v", pids)
	}
	if b, _ := os.ReadFile(filepath.Join(c.Dir, "up", "up.log")); !strings.Contains(string(b), "stopped") {
		t.Errorf("up.log does not show a clean stop:\n%s", b)
	}
	for _, name := range []string{"router", "router-2shards", "router-2shards-1server"} {
		b, _ := os.ReadFile(filepath.Join(c.Dir, "routers", name+".log"))
		if log := string(b); !strings.Contains(log, "connecting to etcd") || !strings.Contains(log, "shardline router ready:") || !strings.HasSuffix(strings.TrimSpace(log), "msg=stopped") {
			t.Errorf("routers/%s.log does not show a router that served and stopped:\n%s", name, log)
		}
	}
}

// tinyBench is a benchCommand for the end-to-end tests: every target, one
// round of 1 s runs with 2 clients, this test binary acting as
// `shardline up` (see benchChildEnv), output kept under dir.
func tinyBench(dir string, stdout, stderr *bytes.Buffer, workloads ...string) *benchCommand {
	return &benchCommand{
		SuiteConfig: bench.SuiteConfig{
			Targets:      bench.AllTargets(),
			Workloads:    workloads,
			Clients:      []int{2},
			Rounds:       1,
			Duration:     time.Second,
			MaxThreads:   2,
			IdleConns:    50,
			PoolSize:     4,
			Scale:        1,
			Dir:          filepath.Join(dir, "work"),
			Shardline:    os.Args[0],
			ShardlineEnv: append(os.Environ(), benchChildEnv+"=1"),
			Command:      "shardline bench (test)",
		},
		Output:   "text",
		JSONPath: filepath.Join(dir, "report", "latest.json"),
		Keep:     true,
		Stdout:   stdout,
		Stderr:   stderr,
	}
}
