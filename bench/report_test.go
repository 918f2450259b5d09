package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1}, 10},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median modified its input: %v", tt.in)
			}
		}
	}
}

// sampleReport is a report of three targets (direct, pgbouncer, router)
// over two pgbench cells and the idle cell, three rounds each.
func sampleReport() *Report {
	cfg := Config{
		Targets: []Target{
			{Name: "direct", Description: "PostgreSQL", Endpoints: []Endpoint{{DSN: "x"}}},
			{Name: "pgbouncer", Description: "PgBouncer | 1.18", Endpoints: []Endpoint{{DSN: "y"}}, ProxyPID: 10,
				Process: "PgBouncer 1.18.0", Pool: "20 to shard s1 (default_pool_size)"},
			{Name: "router", Description: "router", Endpoints: []Endpoint{{DSN: "z"}}, ProxyPID: 20,
				Process: "shardline router --pool-size 20", Pool: "20 to shard s1"},
		},
		Baselines: []string{"direct", "pgbouncer"},
		Workloads: []string{"select-simple", "select-prepared", "idle"},
		Clients:   []int{8},
		Duration:  2 * time.Second,
	}.WithDefaults()
	r := newReport(cfg, "pgbench (PostgreSQL) 15.18")
	r.Command = "shardline bench --quick"
	r.FinishedAt = r.StartedAt.Add(90 * time.Second)
	run := func(round int, tps, p50, p99 float64, cpu *float64) RunResult {
		// Two CPUs, 10% idle in the machine's figure; the idle share
		// follows p50, so that its median is of its own rounds.
		return RunResult{Round: round, TPS: tps, Transactions: int64(tps * 2), P50Ms: p50, P99Ms: p99, LatencyAvgMs: p50, CPUPerTxnUs: cpu,
			MachineCPUPerTxnUs: ptr(1.8e6 / tps), IdleShare: ptr(p50 / 5)}
	}
	c1 := Cell{Workload: "select-simple", Clients: 8, Targets: []TargetCell{
		{Target: "direct", Runs: []RunResult{run(1, 1000, 0.5, 2, nil), run(2, 1200, 0.4, 1, nil), run(3, 1100, 0.45, 3, nil)}},
		{Target: "pgbouncer", Runs: []RunResult{run(1, 800, 0.6, 4, ptr(20.0)), run(2, 700, 0.7, 5, ptr(22.0)), run(3, 900, 0.5, 3, ptr(18.0))}},
		{Target: "router", Runs: []RunResult{run(1, 880, 0.6, 4, ptr(30.0)), {Round: 2, Error: "pgbench run target \"router\": aborted"}, run(3, 720, 0.6, 4, ptr(40.0))}},
	}}
	c2 := Cell{Workload: "select-prepared", Clients: 8, Targets: []TargetCell{
		{Target: "direct", Runs: []RunResult{run(1, 2000, 0.25, 1, nil)}},
		{Target: "pgbouncer", Status: StatusUnsupported, Reason: "PgBouncer 1.18 in transaction mode: no prepared statements", Runs: []RunResult{}},
		{Target: "router", Runs: []RunResult{run(1, 1500, 0.3, 1.5, ptr(35.0))}},
	}}
	idle := func(before, after int64) RunResult {
		return RunResult{Idle: &IdleResult{Conns: 1000, RSSBeforeKiB: before, RSSAfterKiB: after}}
	}
	c3 := Cell{Workload: "idle", Clients: 1000, Targets: []TargetCell{
		{Target: "direct", Status: StatusNotApplicable, Reason: "no proxy process to measure", Runs: []RunResult{}},
		{Target: "pgbouncer", Runs: []RunResult{idle(4000, 6000), idle(4000, 6100), idle(4000, 5900)}},
		{Target: "router", Runs: []RunResult{idle(50000, 62000), idle(50000, 60000), idle(50000, 58000)}},
	}}
	r.Cells = []Cell{c1, c2, c3}
	r.summarize()
	return r
}

// TestPairsOfAKind: a second target without a proxy (direct-2shards) is
// compared round by round with direct, TPS and p50 only, and with no
// proxy; a proxy is not compared with either.
func TestPairsOfAKind(t *testing.T) {
	cfg := Config{
		Targets: []Target{
			{Name: "direct", Endpoints: []Endpoint{{DSN: "x"}}},
			{Name: "direct-2shards", Endpoints: []Endpoint{{DSN: "x"}, {DSN: "w"}}},
			{Name: "pgbouncer", Endpoints: []Endpoint{{DSN: "y"}}, ProxyPID: 10},
		},
		Baselines: []string{"direct", "pgbouncer"},
		Workloads: []string{"select-simple"},
		Clients:   []int{8},
	}.WithDefaults()
	r := newReport(cfg, "pgbench (PostgreSQL) 15.18")
	run := func(round int, tps, p50 float64, cpu *float64) RunResult {
		return RunResult{Round: round, TPS: tps, Transactions: int64(tps), P50Ms: p50, P99Ms: 2 * p50, CPUPerTxnUs: cpu}
	}
	r.Cells = []Cell{{Workload: "select-simple", Clients: 8, Targets: []TargetCell{
		{Target: "direct", Runs: []RunResult{run(1, 1000, 0.5, nil), run(2, 2000, 0.4, nil)}},
		{Target: "direct-2shards", Runs: []RunResult{run(1, 900, 0.6, nil), run(2, 1600, 0.3, nil)}},
		{Target: "pgbouncer", Runs: []RunResult{run(1, 800, 0.6, ptr(20.0)), run(2, 700, 0.7, ptr(22.0))}},
	}}}
	r.summarize()
	c := r.Cell("select-simple", 8)
	d2, b := c.Target("direct-2shards"), c.Target("pgbouncer")
	p, ok := d2.Paired["direct"]
	if !ok || len(d2.Paired) != 1 || p.Rounds != 2 || p.TPSHigher != 0 || p.P50Lower != 1 || p.CPUPerTxn != nil ||
		!near(*p.TPS, (0.9+0.8)/2) || !near(*p.P50, (0.6/0.5+0.3/0.4)/2) {
		t.Errorf("direct-2shards paired = %+v", d2.Paired)
	}
	if b.Paired != nil {
		t.Errorf("pgbouncer paired with a target without a proxy: %+v", b.Paired)
	}
}

func TestReportSummary(t *testing.T) {
	r := sampleReport()
	c := r.Cell("select-simple", 8)
	d, b, rt := c.Target("direct"), c.Target("pgbouncer"), c.Target("router")
	if d.Status != StatusOK || d.TPS != 1100 || d.P50Ms != 0.45 || d.P99Ms != 2 || d.CPUPerTxnUs != nil {
		t.Errorf("direct = %+v", d)
	}
	if b.TPS != 800 || *b.CPUPerTxnUs != 20 {
		t.Errorf("pgbouncer = %+v", b)
	}
	// The router's failed round is left out of the medians.
	if rt.Status != StatusFailed || !strings.Contains(rt.Reason, "aborted") || rt.TPS != 800 || *rt.CPUPerTxnUs != 35 {
		t.Errorf("router = %+v", rt)
	}
	if got := *rt.Ratios["direct"].TPS; got != 800.0/1100 {
		t.Errorf("router/direct TPS = %v", got)
	}
	if got := *rt.Ratios["pgbouncer"].CPUPerTxn; got != 35.0/20 {
		t.Errorf("router/pgbouncer CPU = %v", got)
	}
	if rt.Ratios["direct"].CPUPerTxn != nil {
		t.Errorf("router/direct CPU ratio = %v, want nil (direct has no proxy)", *rt.Ratios["direct"].CPUPerTxn)
	}
	if got := *d.Ratios["direct"].TPS; got != 1 {
		t.Errorf("direct/direct = %v", got)
	}
	// Round by round, against the proxies before it: the router's rounds 1
	// and 3 (round 2 failed) against PgBouncer's same rounds.
	pr, ok := rt.Paired["pgbouncer"]
	if !ok || pr.Rounds != 2 || pr.TPSHigher != 1 || pr.P50Lower != 0 || pr.CPULower != 0 ||
		!near(*pr.TPS, (880.0/800+720.0/900)/2) || !near(*pr.P50, (0.6/0.6+0.6/0.5)/2) || !near(*pr.CPUPerTxn, (30.0/20+40.0/18)/2) {
		t.Errorf("router paired with pgbouncer = %+v", pr)
	}
	if _, ok := rt.Paired["direct"]; ok || b.Paired != nil || d.Paired != nil {
		t.Errorf("paired with or of a target without a proxy, or with none before it: router %v, pgbouncer %v, direct %v", rt.Paired, b.Paired, d.Paired)
	}

	p := r.Cell("select-prepared", 8)
	if pb := p.Target("pgbouncer"); pb.Status != StatusUnsupported || pb.Ratios["direct"].TPS != nil {
		t.Errorf("unsupported pgbouncer = %+v", pb)
	}
	if got := p.Target("router").Ratios["pgbouncer"].TPS; got != nil {
		t.Errorf("ratio to an unsupported baseline = %v, want nil", *got)
	}

	idle := r.Cell("idle", 1000)
	if got := *idle.Target("pgbouncer").KiBPerConn; got != 2 {
		t.Errorf("pgbouncer KiB/conn = %v, want 2", got)
	}
	// Memory per connection is the first round's, not the median.
	if got := *idle.Target("router").KiBPerConn; got != 12 {
		t.Errorf("router KiB/conn = %v, want 12 (the first round)", got)
	}
	if got := *idle.Target("router").Ratios["pgbouncer"].KiBPerConn; got != 6 {
		t.Errorf("router/pgbouncer KiB/conn = %v, want 6", got)
	}
	if r.FailedCells() != 1 {
		t.Errorf("FailedCells = %d", r.FailedCells())
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// ReadReport gives back what WriteJSON wrote, with the figures summarized
// again from the runs (a report of an earlier version gets this one's).
func TestReadReport(t *testing.T) {
	want := sampleReport()
	for ci := range want.Cells {
		for ti := range want.Cells[ci].Targets {
			want.Cells[ci].Targets[ti].Paired = nil // as an earlier version wrote it
		}
	}
	var b strings.Builder
	if err := want.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	rt := got.Cell("select-simple", 8).Target("router")
	if rt.TPS != 800 || rt.Status != StatusFailed || rt.Paired["pgbouncer"].Rounds != 2 {
		t.Errorf("router after ReadReport = %+v", rt)
	}
	if got.Command != want.Command || !got.StartedAt.Equal(want.StartedAt) || len(got.Cells) != len(want.Cells) {
		t.Errorf("ReadReport = %+v", got)
	}
	for _, bad := range []string{"", "{}", `{"cells": []}`, "[1, 2]", "not json"} {
		if _, err := ReadReport(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadReport(%q) = nil error", bad)
		}
	}
}

// A cell whose runs lasted longer than the settings say gets a note.
func TestLongerRunsNoted(t *testing.T) {
	r := sampleReport()
	r.Settings.DurationSeconds = 3
	for i := range r.Cells[0].Targets[0].Runs { // direct, select-simple, 8 clients
		r.Cells[0].Targets[0].Runs[i].DurationSeconds = 10
	}
	r.Cells[0].Targets[1].Runs[0].DurationSeconds = 3 // pgbouncer: as the settings say
	notes := strings.Join(r.notes(), "\n")
	if want := "direct at 8 clients: runs of 10 s instead of 3 s"; !strings.Contains(notes, want) {
		t.Errorf("notes lack %q:\n%s", want, notes)
	}
	if strings.Contains(notes, "pgbouncer at 8 clients: runs") {
		t.Errorf("notes name a target whose runs lasted as long as the settings say:\n%s", notes)
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `WORKLOAD         CLIENTS  TARGET      TPS  P50_MS  P99_MS  PROXY_CPU_US/TXN  MACHINE_CPU_US/TXN   IDLE  TPS/direct  P99/direct  TPS/pgbouncer  P99/pgbouncer  CPU/pgbouncer  NOTE
select-simple    8        direct     1100   0.450   2.000               n/a              1636.4   9.0%        1.00        1.00           1.38           0.50            n/a
select-simple    8        pgbouncer   800   0.600   4.000              20.0              2250.0  12.0%        0.73        2.00           1.00           1.00           1.00
select-simple    8        router      800   0.600   4.000              35.0              2272.7  12.0%        0.73        2.00           1.00           1.00           1.75  FAILED 1/3
select-prepared  8        direct     2000   0.250   1.000               n/a               900.0   5.0%        1.00        1.00            n/a            n/a            n/a
select-prepared  8        pgbouncer     -       -       -                 -                   -      -         n/a         n/a            n/a            n/a            n/a  unsupported
select-prepared  8        router     1500   0.300   1.500              35.0              1200.0   6.0%        0.75        1.50            n/a            n/a            n/a

CONNS  TARGET     RSS_BEFORE_MIB  RSS_AFTER_MIB  KIB/CONN  KIB/CONN/pgbouncer  NOTE
1000   direct                  -              -         -                 n/a  n/a
1000   pgbouncer             3.9            5.9       2.0                1.00
1000   router               48.8           60.5      12.0                6.00

GOAL                                              WORKLOAD       CLIENTS                 BOUND  FIGURE  95% INTERVAL  ROUNDS  VERDICT
proxy CPU per transaction, router over PgBouncer  select-simple        8          at most 1.00   1.861           n/a       2  missed (too few rounds for an interval)
proxy memory per idle client connection, KiB      idle              1000  at most 15.6 (16 kB)    12.0           n/a       1  met

notes:
  router select-simple c=8: failed: pgbench run target "router": aborted
  pgbouncer (select-prepared): unsupported: PgBouncer 1.18 in transaction mode: no prepared statements
  direct (idle): n/a: no proxy process to measure
`
	if b.String() != want {
		t.Errorf("WriteTable =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := sampleReport()
	r.Environment = Environment{NProc: 2, CPUModel: "Intel(R) Xeon(R) Processor", MemTotalMiB: 24105, GoVersion: "go1.26.0",
		PostgreSQL: "PostgreSQL 15.18", PgBouncer: "PgBouncer 1.18.0", Pgbench: "pgbench (PostgreSQL) 15.18"}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"```sh\nshardline bench --quick\n```",
		"| CPUs (nproc) | 2 |",
		"| CPU model | Intel(R) Xeon(R) Processor |",
		"| Memory | 23.5 GiB |",
		"| PostgreSQL | PostgreSQL 15.18 |",
		"| PgBouncer | PgBouncer 1.18.0 |",
		"| Go | go1.26.0 |",
		"| target | measured process | server connections | what | proxy CPU with no clients working |",
		"| direct | none | none | PostgreSQL | n/a |",
		"| pgbouncer | PgBouncer 1.18.0 | 20 to shard s1 (default_pool_size) | PgBouncer \\| 1.18 |",
		"| router | shardline router --pool-size 20 | 20 to shard s1 | router |",
		"### select-simple\n",
		"| CLIENTS | TARGET | TPS |",
		"| 8 | router | 800 | 0.600 | 4.000 | 35.0 | 2272.7 | 12.0% | 0.73 | 2.00 | 1.00 | 1.00 | 1.75 | FAILED 1/3 |",
		"### round by round\n",
		"| select-simple | 8 | router | pgbouncer | 0.95 (1/2) | 1.10 (0/2) | 1.86 (0/2) |",
		"### idle\n",
		"| 1000 | router | 48.8 | 60.5 | 12.0 | 6.00 |  |",
		"- pgbouncer (select-prepared): unsupported: PgBouncer 1.18",
		"(1m30s)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// The settings say how the rounds went; a report from before the
	// matrix order says its rounds of a cell ran back to back.
	for order, want := range map[string]string{
		OrderMatrix: "each round going over every cell in turn",
		"":          "the rounds of a cell back to back",
	} {
		r.Settings.Order = order
		b.Reset()
		if err := r.WriteMarkdown(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("order %q: markdown lacks %q", order, want)
		}
	}
}

func TestReportJSON(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"command", "started_at", "finished_at", "environment", "settings", "baselines", "targets", "cells"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q", k)
		}
	}
	cell := m["cells"].([]any)[0].(map[string]any)
	direct := cell["targets"].([]any)[0].(map[string]any)
	for _, k := range []string{"target", "status", "runs", "tps", "p50_ms", "p99_ms", "proxy_cpu_us_per_txn", "ratios"} {
		if _, ok := direct[k]; !ok {
			t.Errorf("target JSON lacks %q", k)
		}
	}
	if direct["proxy_cpu_us_per_txn"] != nil {
		t.Errorf("direct proxy CPU = %v, want null", direct["proxy_cpu_us_per_txn"])
	}
	ratio := direct["ratios"].(map[string]any)["pgbouncer"].(map[string]any)
	if ratio["tps"] != 1100.0/800 || ratio["proxy_cpu_per_txn"] != nil {
		t.Errorf("direct/pgbouncer ratios = %v", ratio)
	}
	targets := m["targets"].([]any)
	if _, ok := targets[0].(map[string]any)["process"]; ok {
		t.Errorf("direct target JSON has a process: %v", targets[0])
	}
	if router := targets[2].(map[string]any); router["process"] != "shardline router --pool-size 20" || router["pool"] != "20 to shard s1" {
		t.Errorf("router target JSON = %v", router)
	}
	var back Report
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
		t.Fatal(err)
	}
	if back.Cells[0].Targets[2].Runs[2].TPS != 720 || *back.Cells[2].Targets[1].KiBPerConn != 2 {
		t.Errorf("round trip lost figures: %+v", back.Cells[0].Targets[2])
	}
}

// replicaReport is a report of the default select-simple workload (direct,
// router) and both replica workloads on their own targets, two rounds
// each, with the router's counters.
func replicaReport() *Report {
	own := func(name, w string) Target {
		return Target{Name: name, Endpoints: []Endpoint{{DSN: "r"}}, ProxyPID: 20, Workloads: []string{w}, MetricsURL: "http://127.0.0.1:1/metrics"}
	}
	cfg := Config{
		Targets: []Target{
			{Name: "direct", Endpoints: []Endpoint{{DSN: "x"}}},
			{Name: "router", Endpoints: []Endpoint{{DSN: "z"}}, ProxyPID: 20},
			own("router-primary", "replica-read"), own("router-replica", "replica-read"),
			own("router-no-tokens", "write-token"), own("router-tokens", "write-token"),
		},
		Baselines: []string{"direct", "router-primary", "router-no-tokens"},
		Workloads: []string{"select-simple", "replica-read", "write-token"},
		Clients:   []int{8},
	}.WithDefaults()
	r := newReport(cfg, "pgbench (PostgreSQL) 15.18")
	run := func(round int, tps, p99, cpu float64, c *RouterCounters) RunResult {
		return RunResult{Round: round, TPS: tps, Transactions: int64(tps), P50Ms: 0.5, P99Ms: p99, CPUPerTxnUs: ptr(cpu), Router: c}
	}
	counters := func(txns, replica, tokens int64) *RouterCounters {
		return &RouterCounters{Transactions: txns, ReplicaReads: replica, PrimaryReads: txns - replica, WriteTokens: tokens,
			LoopSleeps: 2 * replica}
	}
	r.Cells = []Cell{
		{Workload: "select-simple", Clients: 8, Targets: []TargetCell{
			{Target: "direct", Runs: []RunResult{{Round: 1, TPS: 1000, Transactions: 1000, P50Ms: 0.4, P99Ms: 1}}},
			{Target: "router", Runs: []RunResult{run(1, 800, 2, 30, nil)}},
		}},
		{Workload: "replica-read", Clients: 8, Targets: []TargetCell{
			{Target: "router-primary", Runs: []RunResult{run(1, 800, 2, 30, counters(800, 0, 0)), run(2, 1000, 2, 28, counters(1000, 0, 0))}},
			{Target: "router-replica", Runs: []RunResult{run(1, 720, 3, 33, counters(720, 720, 0)), run(2, 900, 3, 31, counters(1000, 990, 0))}},
		}},
		{Workload: "write-token", Clients: 8, Targets: []TargetCell{
			{Target: "router-no-tokens", Runs: []RunResult{run(1, 500, 4, 40, counters(500, 0, 0)), run(2, 500, 4, 40, counters(500, 0, 0))}},
			{Target: "router-tokens", Runs: []RunResult{run(1, 450, 5, 50, counters(450, 0, 450)), {Round: 2, Error: "router metrics: connection refused"}}},
		}},
	}
	r.summarize()
	return r
}

func TestReplicaReport(t *testing.T) {
	r := replicaReport()
	rr := r.Cell("replica-read", 8)
	p, rep := rr.Target("router-primary"), rr.Target("router-replica")
	if *p.ReplicaShare != 0 || *p.WriteTokensPerTxn != 0 || *rep.ReplicaShare != (1+0.99)/2 {
		t.Errorf("replica shares: primary %v, replica %v", *p.ReplicaShare, *rep.ReplicaShare)
	}
	if *p.LoopSleepsPerTxn != 0 || *rep.LoopSleepsPerTxn != (2+1.98)/2 {
		t.Errorf("loop sleeps per transaction: primary %v, replica %v", *p.LoopSleepsPerTxn, *rep.LoopSleepsPerTxn)
	}
	// Ratios divide by the baselines that run in the cell only.
	if len(rep.Ratios) != 1 || *rep.Ratios["router-primary"].TPS != 810.0/900 || *rep.Ratios["router-primary"].CPUPerTxn != 32.0/29 {
		t.Errorf("router-replica ratios = %+v", rep.Ratios)
	}
	if d := r.Cell("select-simple", 8).Target("router"); len(d.Ratios) != 1 || d.Ratios["direct"].TPS == nil || d.ReplicaShare != nil || d.LoopSleepsPerTxn != nil {
		t.Errorf("router select-simple = %+v", d)
	}
	tok := r.Cell("write-token", 8).Target("router-tokens")
	if tok.Status != StatusFailed || *tok.WriteTokensPerTxn != 1 || *tok.Ratios["router-no-tokens"].TPS != 0.9 {
		t.Errorf("router-tokens = %+v", tok)
	}

	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `WORKLOAD       CLIENTS  TARGET   TPS  P50_MS  P99_MS  PROXY_CPU_US/TXN  MACHINE_CPU_US/TXN  IDLE  TPS/direct  P99/direct  NOTE
select-simple  8        direct  1000   0.400   1.000               n/a                 n/a   n/a        1.00        1.00
select-simple  8        router   800   0.500   2.000              30.0                 n/a   n/a        0.80        2.00

WORKLOAD      CLIENTS  TARGET          TPS  P50_MS  P99_MS  PROXY_CPU_US/TXN  MACHINE_CPU_US/TXN  IDLE  REPLICA_SHARE  TOKENS/TXN  TPS/router-primary  P99/router-primary  CPU/router-primary  NOTE
replica-read  8        router-primary  900   0.500   2.000              29.0                 n/a   n/a           0.0%        0.00                1.00                1.00                1.00
replica-read  8        router-replica  810   0.500   3.000              32.0                 n/a   n/a          99.5%        0.00                0.90                1.50                1.10

WORKLOAD     CLIENTS  TARGET            TPS  P50_MS  P99_MS  PROXY_CPU_US/TXN  MACHINE_CPU_US/TXN  IDLE  REPLICA_SHARE  TOKENS/TXN  TPS/router-no-tokens  P99/router-no-tokens  CPU/router-no-tokens  NOTE
write-token  8        router-no-tokens  500   0.500   4.000              40.0                 n/a   n/a           0.0%        0.00                  1.00                  1.00                  1.00
write-token  8        router-tokens     450   0.500   5.000              50.0                 n/a   n/a           0.0%        1.00                  0.90                  1.25                  1.25  FAILED 1/2

notes:
  router-tokens write-token c=8: failed: router metrics: connection refused
`
	if b.String() != want {
		t.Errorf("WriteTable =\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"REPLICA_SHARE is the share of the transactions the router routed that a replica served",
		"### replica-read\n\npgbench -S -M simple through the router on a cluster with one streaming replica per shard",
		"| CLIENTS | TARGET | TPS | P50_MS | P99_MS | PROXY_CPU_US/TXN | MACHINE_CPU_US/TXN | IDLE | REPLICA_SHARE | TOKENS/TXN | TPS/router-primary | P99/router-primary | CPU/router-primary | NOTE |",
		"| 8 | router-replica | 810 | 0.500 | 3.000 | 32.0 | n/a | n/a | 99.5% | 0.00 | 0.90 | 1.50 | 1.10 |  |",
		"### write-token\n",
		"| 8 | router-tokens | 450 | 0.500 | 5.000 | 50.0 | n/a | n/a | 0.0% | 1.00 | 0.90 | 1.25 | 1.25 | FAILED 1/2 |",
		"### select-simple\n",
		"| CLIENTS | TARGET | TPS | P50_MS | P99_MS | PROXY_CPU_US/TXN | MACHINE_CPU_US/TXN | IDLE | TPS/direct | P99/direct | NOTE |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}

	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
		t.Fatal(err)
	}
	got := back.Cell("replica-read", 8).Target("router-replica")
	if *got.ReplicaShare != *rep.ReplicaShare || got.Runs[1].Router.ReplicaReads != 990 {
		t.Errorf("JSON round trip: %+v", got)
	}
	if ti := back.Targets[3]; ti.Name != "router-replica" || !ti.RouterMetrics || len(ti.Workloads) != 1 {
		t.Errorf("target info = %+v", ti)
	}
	for _, k := range []string{`"replica_share"`, `"write_tokens_per_txn"`, `"router": {`, `"replica_reads"`, `"write_tokens"`} {
		if !strings.Contains(b.String(), k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
}
