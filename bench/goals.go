package bench

import (
	"fmt"
	"slices"
	"strings"
)

// Goal verdicts.
const (
	GoalMet         = "met"
	GoalMissed      = "missed"
	GoalNotMeasured = "not measured"
)

// Goal is one of the performance goals the router is held to (README,
// Performance), checked against the report's figures: one workload at one
// client count.
type Goal struct {
	// Goal says what is compared, Bound what it must stay within.
	Goal     string `json:"goal"`
	Workload string `json:"workload"`
	Clients  int    `json:"clients"`
	Bound    string `json:"bound"`
	// Value is the figure held against the bound: a round-by-round ratio
	// (Paired) or, for memory, KiB per connection. Interval is its 95%
	// confidence interval (null for memory, or with fewer than six
	// rounds), Rounds the rounds it is of.
	Value    *float64  `json:"value"`
	Interval *Interval `json:"interval"`
	Rounds   int       `json:"rounds"`
	// Verdict is GoalMet, GoalMissed or GoalNotMeasured. Decided is set
	// when the interval lies wholly on the verdict's side of the bound:
	// the figure is not this machine's noise around the bound.
	Verdict string `json:"verdict"`
	Decided bool   `json:"decided"`
	// Detail adds the figures behind the ratio where they say more
	// (latency added over direct).
	Detail string `json:"detail,omitempty"`
}

// Goal bounds.
const (
	// goalPreparedShare is the least share of direct's TPS the router
	// keeps in prepared mode, which PgBouncer 1.18 cannot serve in
	// transaction mode.
	goalPreparedShare = 0.7
	// goalKiBPerConn is 16 kB of proxy memory per idle client connection.
	goalKiBPerConn = 16000.0 / 1024
	// goalTwoShards is the most CPU per transaction routing across two
	// shards may cost over pass-through to one.
	goalTwoShards = 1.10
)

// goalCheck is one kind of goal: target against other in the cells of
// workloads at clients (every client count of the report when nil) where
// both can run, one figure of the comparison within bound.
type goalCheck struct {
	goal          string
	workloads     []string
	clients       []int
	target, other string
	figure        func(Paired) (*float64, *Interval)
	bound         float64
	atLeast       bool
	detail        func(c *Cell) string
}

func pairedCPU(p Paired) (*float64, *Interval) { return p.CPUPerTxn, p.CPUInterval }
func pairedTPS(p Paired) (*float64, *Interval) { return p.TPS, p.TPSInterval }
func pairedP50(p Paired) (*float64, *Interval) { return p.P50, p.P50Interval }

// goalChecks are the router's goals, in the README's order.
func goalChecks() []goalCheck {
	selects := []string{WorkloadSelectSimple, WorkloadSelectExtended}
	return []goalCheck{
		{goal: "proxy CPU per transaction, router over PgBouncer", workloads: selects,
			target: TargetRouter, other: TargetPgBouncer, figure: pairedCPU, bound: 1},
		{goal: "TPS, router over PgBouncer", workloads: selects, clients: []int{32},
			target: TargetRouter, other: TargetPgBouncer, figure: pairedTPS, bound: 1, atLeast: true},
		{goal: "p50 latency, router over PgBouncer (the same round's direct p50 is added to both)", workloads: selects, clients: []int{1},
			target: TargetRouter, other: TargetPgBouncer, figure: pairedP50, bound: 1, detail: addedLatency},
		{goal: "TPS, router over PostgreSQL directly (prepared statements)", workloads: []string{WorkloadSelectPrepared}, clients: []int{32},
			target: TargetRouter, other: TargetDirect, figure: pairedTPS, bound: goalPreparedShare, atLeast: true},
		{goal: "proxy CPU per transaction, two shards by tenant over pass-through", workloads: selects,
			target: TargetRouter2, other: TargetRouter, figure: pairedCPU, bound: goalTwoShards, detail: twoShardControls},
	}
}

// goals checks the report against every goal whose cells it has.
func (r *Report) goals() []Goal {
	var out []Goal
	for _, g := range goalChecks() {
		for _, c := range r.Cells {
			if !slices.Contains(g.workloads, c.Workload) || g.clients != nil && !slices.Contains(g.clients, c.Clients) {
				continue
			}
			t, o := c.target(g.target), c.target(g.other)
			if t == nil || o == nil || t.Status == StatusNotApplicable || o.Status == StatusNotApplicable {
				continue // router-2shards at 1 client: one client cannot be split over two shards
			}
			out = append(out, g.check(&c, t, o))
		}
	}
	for _, c := range r.Cells {
		if t := c.target(TargetRouter); c.Workload == WorkloadIdle && t != nil {
			out = append(out, memoryGoal(&c, t))
		}
	}
	return out
}

func (g goalCheck) check(c *Cell, t, o *TargetCell) Goal {
	rel := "at most"
	if g.atLeast {
		rel = "at least"
	}
	res := Goal{Goal: g.goal, Workload: c.Workload, Clients: c.Clients, Bound: fmt.Sprintf("%s %.2f", rel, g.bound), Verdict: GoalNotMeasured}
	if !t.hasFigures() || !o.hasFigures() {
		return res
	}
	p := pair(t, o)
	v, in := g.figure(p)
	if v == nil {
		return res
	}
	res.Value, res.Interval, res.Rounds = v, in, p.Rounds
	within := func(x float64) bool {
		if g.atLeast {
			return x >= g.bound
		}
		return x <= g.bound
	}
	res.Verdict = GoalMissed
	if within(*v) {
		res.Verdict = GoalMet
	}
	if in != nil {
		res.Decided = within(in.Low) == within(in.High)
	}
	if g.detail != nil {
		res.Detail = g.detail(c)
	}
	return res
}

// memoryGoal holds the router's idle memory per connection to 16 kB.
func memoryGoal(c *Cell, t *TargetCell) Goal {
	res := Goal{Goal: "proxy memory per idle client connection, KiB", Workload: c.Workload, Clients: c.Clients,
		Bound: fmt.Sprintf("at most %.1f (16 kB)", goalKiBPerConn), Verdict: GoalNotMeasured}
	if t.KiBPerConn == nil {
		return res
	}
	res.Value, res.Rounds = t.KiBPerConn, 1
	res.Verdict = GoalMissed
	if *t.KiBPerConn <= goalKiBPerConn {
		res.Verdict = GoalMet
	}
	res.Decided = true // one measurement of a size, not a rate: no noise to weigh
	return res
}

// addedLatency says what each proxy's p50 added over direct's (the median
// over rounds of each round's difference) and, round by round, how much
// more the router added than PgBouncer: direct's p50 is the same for both
// within a round, so that is the median of the router's p50 minus
// PgBouncer's. In µs.
func addedLatency(c *Cell) string {
	d, rt, b := c.target(TargetDirect), c.target(TargetRouter), c.target(TargetPgBouncer)
	if d == nil || rt == nil || b == nil {
		return ""
	}
	diffs := func(t, base *TargetCell) *float64 {
		var xs []float64
		sameRounds(t, base, func(r, o *RunResult) { xs = append(xs, (r.P50Ms-o.P50Ms)*1000) })
		return medianPtr(xs)
	}
	return fmt.Sprintf("p50 added over direct: router %s, PgBouncer %s (each the median over rounds of that round's difference); "+
		"round by round the router's p50 minus PgBouncer's: %s",
		fmtPtr(diffs(rt, d), "%.1f µs"), fmtPtr(diffs(b, d), "%.1f µs"), fmtPtr(diffs(rt, b), "%+.1f µs"))
}

// twoShardControls puts the two-shard goal beside its controls, round by
// round: router-2shards-1server over router (the same routing, no second
// server) and PgBouncer over two servers against one (a second server, no
// routing work); and beside the whole machine's CPU per transaction
// (medians) with one server and with two, through each proxy. "" when the
// cell has none of them.
func twoShardControls(c *Cell) string {
	b, b2 := c.target(TargetPgBouncer), c.target(TargetPgBouncer2)
	r, r2, r1s := c.target(TargetRouter), c.target(TargetRouter2), c.target(TargetRouter2OneServer)
	var parts []string
	ratio := func(what string, t, o *TargetCell) {
		if t == nil || o == nil || !t.hasFigures() || !o.hasFigures() {
			return
		}
		if p := pair(t, o); p.CPUPerTxn != nil {
			parts = append(parts, fmt.Sprintf("%s: CPU per transaction %.2f%s", what, *p.CPUPerTxn, fmtInterval(p.CPUInterval)))
		}
	}
	ratio("two shards on one server over pass-through (the routing without the second server)", r1s, r)
	ratio("the control, PgBouncer over two servers against one", b2, b)
	machine := func(proxy string, one, two *TargetCell) {
		if one != nil && two != nil && one.MachineCPUPerTxnUs != nil && two.MachineCPUPerTxnUs != nil {
			parts = append(parts, fmt.Sprintf("machine CPU per transaction through %s %.1f µs with one server, %.1f with two",
				proxy, *one.MachineCPUPerTxnUs, *two.MachineCPUPerTxnUs))
		}
	}
	machine("the router", r, r2)
	machine("PgBouncer", b, b2)
	return strings.Join(parts, "; ")
}

// verdictText is the verdict as the report prints it: "within noise" when
// the figure's interval reaches across the bound.
func (g Goal) verdictText() string {
	switch {
	case g.Verdict == GoalNotMeasured || g.Decided:
		return g.Verdict
	case g.Interval == nil:
		return g.Verdict + " (too few rounds for an interval)"
	default:
		return g.Verdict + ", within noise"
	}
}

// goalHeader and goalRows are the goals as a table.
func goalHeader() []string {
	return []string{"GOAL", "WORKLOAD", "CLIENTS", "BOUND", "FIGURE", "95% INTERVAL", "ROUNDS", "VERDICT"}
}

func (r *Report) goalRows() [][]string {
	var rows [][]string
	for _, g := range r.Goals {
		// Three places: a ratio printed 1.00 beside "missed" is 1.004.
		format := "%.3f"
		if g.Workload == WorkloadIdle {
			format = "%.1f"
		}
		in := "n/a"
		if g.Interval != nil {
			in = fmt.Sprintf(format+" to "+format, g.Interval.Low, g.Interval.High)
		}
		rows = append(rows, []string{g.Goal, g.Workload, fmt.Sprint(g.Clients), g.Bound, fmtPtr(g.Value, format), in, fmt.Sprint(g.Rounds), g.verdictText()})
	}
	return rows
}
