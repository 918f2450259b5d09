package bench

import (
	"strings"
	"testing"
)

// goalsReport has direct, pgbouncer, router and router-2shards over six
// rounds at 1 and 32 clients of select-simple, plus the idle cell. The
// router's CPU is below PgBouncer's in every round at 32 clients and
// straddles it at 1; router-2shards costs 1.05 to 1.20 of the router
// (median 1.11). At 32 clients pgbouncer-2shards costs 1.05 of pgbouncer
// and router-2shards-1server 1.02 of the router in every round, and the
// machine's CPU per transaction is 100 µs through the router and 110
// through router-2shards.
func goalsReport() *Report {
	cfg := Config{
		Targets: []Target{
			{Name: TargetDirect, Endpoints: []Endpoint{{DSN: "x"}}},
			{Name: TargetPgBouncer, Endpoints: []Endpoint{{DSN: "y"}}, ProxyPID: 10},
			{Name: TargetRouter, Endpoints: []Endpoint{{DSN: "z"}}, ProxyPID: 20},
			{Name: TargetRouter2, Endpoints: []Endpoint{{DSN: "z"}, {DSN: "w"}}, ProxyPID: 30},
			{Name: TargetPgBouncer2, Endpoints: []Endpoint{{DSN: "y"}, {DSN: "v"}}, ProxyPID: 40},
			{Name: TargetRouter2OneServer, Endpoints: []Endpoint{{DSN: "u"}, {DSN: "u"}}, ProxyPID: 50},
		},
		Baselines: []string{TargetDirect, TargetPgBouncer},
		Workloads: []string{"select-simple", WorkloadIdle},
		Clients:   []int{1, 32},
	}.WithDefaults()
	r := newReport(cfg, "pgbench (PostgreSQL) 15.18")
	runs := func(tps, p50, cpu []float64) []RunResult {
		var out []RunResult
		for i := range tps {
			run := RunResult{Round: i + 1, TPS: tps[i], Transactions: int64(tps[i]), P50Ms: p50[i], P99Ms: 2 * p50[i]}
			if cpu != nil {
				run.CPUPerTxnUs = ptr(cpu[i])
			}
			out = append(out, run)
		}
		return out
	}
	same := func(v float64) []float64 { return []float64{v, v, v, v, v, v} }
	one := Cell{Workload: "select-simple", Clients: 1, Targets: []TargetCell{
		{Target: TargetDirect, Runs: runs(same(10000), []float64{0.050, 0.052, 0.048, 0.050, 0.051, 0.049}, nil)},
		{Target: TargetPgBouncer, Runs: runs(same(8000), []float64{0.080, 0.082, 0.079, 0.081, 0.080, 0.083}, []float64{30, 30, 30, 30, 30, 30})},
		{Target: TargetRouter, Runs: runs(same(8000), []float64{0.078, 0.084, 0.077, 0.080, 0.079, 0.081}, []float64{27, 33, 28, 31, 29, 32})},
		{Target: TargetRouter2, Status: StatusNotApplicable, Reason: "needs at least 2 clients", Runs: []RunResult{}},
	}}
	many := Cell{Workload: "select-simple", Clients: 32, Targets: []TargetCell{
		{Target: TargetDirect, Runs: runs(same(20000), same(1), nil)},
		{Target: TargetPgBouncer, Runs: runs(same(16000), same(1.5), same(20))},
		{Target: TargetRouter, Runs: runs([]float64{18000, 15000, 19000, 17000, 18000, 16500}, same(1.2), same(10))},
		{Target: TargetRouter2, Runs: runs(same(17000), same(1.3), []float64{10.5, 12, 11, 11.5, 10.8, 11.2})},
		{Target: TargetPgBouncer2, Runs: runs(same(15000), same(1.6), same(21))},
		{Target: TargetRouter2OneServer, Runs: runs(same(18000), same(1.25), same(10.2))},
	}}
	for i, machine := range map[int]float64{2: 100, 3: 110} {
		for j := range many.Targets[i].Runs {
			many.Targets[i].Runs[j].MachineCPUPerTxnUs = ptr(machine)
		}
	}
	idle := Cell{Workload: WorkloadIdle, Clients: 1000, Targets: []TargetCell{
		{Target: TargetDirect, Status: StatusNotApplicable, Runs: []RunResult{}},
		{Target: TargetPgBouncer, Runs: []RunResult{{Idle: &IdleResult{Conns: 1000, RSSBeforeKiB: 4000, RSSAfterKiB: 6000}}}},
		{Target: TargetRouter, Runs: []RunResult{{Idle: &IdleResult{Conns: 1000, RSSBeforeKiB: 50000, RSSAfterKiB: 70000}}}},
		{Target: TargetRouter2, Status: StatusNotApplicable, Runs: []RunResult{}},
	}}
	r.Cells = []Cell{one, many, idle}
	r.summarize()
	return r
}

func findGoal(t *testing.T, r *Report, prefix string, clients int) Goal {
	t.Helper()
	for _, g := range r.Goals {
		if strings.HasPrefix(g.Goal, prefix) && g.Clients == clients {
			return g
		}
	}
	t.Fatalf("no goal %q at %d clients in %+v", prefix, clients, r.Goals)
	return Goal{}
}

func TestGoals(t *testing.T) {
	r := goalsReport()

	// 32 clients: CPU 0.5 of PgBouncer's in every round: met beyond doubt.
	g := findGoal(t, r, "proxy CPU per transaction, router over", 32)
	if g.Verdict != GoalMet || !g.Decided || g.Rounds != 6 || !near(*g.Value, 0.5) || g.Interval == nil || g.Interval.High != 0.5 {
		t.Errorf("CPU at 32 clients = %+v", g)
	}
	// 1 client: 0.9 to 1.1 of PgBouncer's, median 1.0: met, but the
	// interval reaches across the bound.
	g = findGoal(t, r, "proxy CPU per transaction, router over", 1)
	if g.Verdict != GoalMet || g.Decided || !near(*g.Value, 1) || !near(g.Interval.Low, 0.9) || !near(g.Interval.High, 1.1) {
		t.Errorf("CPU at 1 client = %+v", g)
	}
	if got := g.verdictText(); got != "met, within noise" {
		t.Errorf("verdict text %q", got)
	}
	// TPS at 32 clients: 15000/16000 to 19000/16000, median 1.09: met
	// within noise.
	g = findGoal(t, r, "TPS, router over PgBouncer", 32)
	if g.Verdict != GoalMet || g.Decided || !near(*g.Value, (17000.0/16000+18000.0/16000)/2) {
		t.Errorf("TPS at 32 clients = %+v", g)
	}
	// p50 at 1 client: the router's minus PgBouncer's, round by round:
	// -2, +2, -2, -1, -1, -2 µs; median -1.5.
	g = findGoal(t, r, "p50 latency", 1)
	if g.Verdict != GoalMet || !strings.Contains(g.Detail, "router 29.5 µs, PgBouncer 30.5 µs") || !strings.Contains(g.Detail, "-1.5 µs") {
		t.Errorf("p50 at 1 client = %+v", g)
	}
	// Two shards at 32 clients: 1.05 to 1.20 of the router, median 1.11:
	// missed, within noise.
	g = findGoal(t, r, "proxy CPU per transaction, two shards", 32)
	if g.Verdict != GoalMissed || g.Decided || !near(*g.Value, (1.10+1.12)/2) || g.Bound != "at most 1.10" {
		t.Errorf("two shards at 32 clients = %+v", g)
	}
	// Beside it, the control and the machine: PgBouncer's machine CPU was
	// not measured, so only the router's is given.
	for _, want := range []string{"PgBouncer over two servers against one: CPU per transaction 1.05 [1.05, 1.05]",
		"two shards on one server over pass-through (the routing without the second server): CPU per transaction 1.02 [1.02, 1.02]",
		"through the router 100.0 µs with one server, 110.0 with two"} {
		if !strings.Contains(g.Detail, want) {
			t.Errorf("two shards at 32 clients: detail %q lacks %q", g.Detail, want)
		}
	}
	if strings.Contains(g.Detail, "through PgBouncer") {
		t.Errorf("two shards at 32 clients: detail %q gives PgBouncer's machine CPU, which was not measured", g.Detail)
	}
	// Memory: 20 KiB per connection is over 16 kB.
	g = findGoal(t, r, "proxy memory", 1000)
	if g.Verdict != GoalMissed || !g.Decided || *g.Value != 20 {
		t.Errorf("memory = %+v", g)
	}
	for _, g := range r.Goals {
		if g.Clients == 1 && strings.Contains(g.Goal, "two shards") {
			t.Errorf("a two-shard goal at 1 client, where router-2shards cannot run: %+v", g)
		}
		if g.Workload == "select-prepared" || g.Workload == "select-extended" {
			t.Errorf("a goal for a workload the report did not run: %+v", g)
		}
	}
}

// TestGoalsFewRounds: with fewer than six rounds a verdict has no interval
// and says so.
func TestGoalsFewRounds(t *testing.T) {
	r := sampleReport() // three rounds, one of the router's failed
	g := findGoal(t, r, "proxy CPU per transaction, router over", 8)
	if g.Verdict != GoalMissed || g.Interval != nil || g.Decided || g.Rounds != 2 {
		t.Errorf("CPU at 8 clients = %+v", g)
	}
	if got := g.verdictText(); got != "missed (too few rounds for an interval)" {
		t.Errorf("verdict text %q", got)
	}
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## Goals") || !strings.Contains(md.String(), "| proxy CPU per transaction, router over PgBouncer | select-simple | 8 | at most 1.00 | 1.861 | n/a | 2 | missed (too few rounds for an interval) |") {
		t.Errorf("markdown lacks the goals table:\n%s", md.String())
	}
}
