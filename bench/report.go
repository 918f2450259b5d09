package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Cell statuses.
const (
	// StatusOK: every round ran.
	StatusOK = "ok"
	// StatusFailed: at least one round failed; figures are medians of the
	// rounds that did not.
	StatusFailed = "failed"
	// StatusUnsupported: the target cannot run the workload (PgBouncer in
	// transaction mode and named prepared statements); not run.
	StatusUnsupported = "unsupported"
	// StatusNotApplicable: the figure does not exist for the target (no
	// proxy to measure memory of; fewer clients than endpoints); not run.
	StatusNotApplicable = "n/a"
)

// Report is the outcome of Run. Its JSON field names are stable. Figures
// that do not exist (proxy CPU of PostgreSQL directly, a ratio to a
// missing baseline) are null in JSON.
type Report struct {
	// Command is the command line that produced the report, when the
	// caller sets it.
	Command     string      `json:"command,omitempty"`
	StartedAt   time.Time   `json:"started_at"`
	FinishedAt  time.Time   `json:"finished_at"`
	Environment Environment `json:"environment"`
	Settings    Settings    `json:"settings"`
	// Baselines name the targets that ratios divide by.
	Baselines []string     `json:"baselines"`
	Targets   []TargetInfo `json:"targets"`
	// Cells are the workload x clients cells in the order they ran.
	Cells []Cell `json:"cells"`
	// Goals are the router's performance goals checked against the
	// cells (goals.go): only those whose cells and targets ran.
	Goals []Goal `json:"goals,omitempty"`
	// Interrupted holds why the run ended early; empty when it finished.
	Interrupted string `json:"interrupted,omitempty"`
}

// Settings are the run's parameters.
type Settings struct {
	Workloads       []string `json:"workloads"`
	Clients         []int    `json:"clients"`
	DurationSeconds int      `json:"duration_seconds"`
	Rounds          int      `json:"rounds"`
	MaxThreads      int      `json:"max_threads"`
	IdleConns       int      `json:"idle_conns"`
	WarmupSeconds   int      `json:"warmup_seconds"`
	// Order is how the rounds went: OrderMatrix, or empty for a report
	// made before it, whose rounds of a cell ran back to back.
	Order string `json:"order,omitempty"`
}

// OrderMatrix: each round goes over every cell in turn (see schedule).
const OrderMatrix = "matrix"

// TargetInfo describes one target in the report.
type TargetInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Endpoints is how many pgbench processes a run of the target starts.
	Endpoints int `json:"endpoints"`
	// Proxy is true when the target has a process whose CPU and memory
	// are measured.
	Proxy bool `json:"proxy"`
	// Process is what runs as the measured process (Target.Process), and
	// Pool the server connections it keeps for the target (Target.Pool);
	// empty for none.
	Process string `json:"process,omitempty"`
	Pool    string `json:"pool,omitempty"`
	// Workloads are the only workloads the target runs (targets built
	// for the replica workloads); empty for every other one.
	Workloads []string `json:"workloads,omitempty"`
	// RouterMetrics is true when each run reads the router's counters.
	RouterMetrics bool `json:"router_metrics,omitempty"`
	// IdleCPUPercent is the proxy process's CPU use (percent of one CPU)
	// while no client worked, sampled before the matrix; null when not
	// sampled.
	IdleCPUPercent *float64 `json:"proxy_idle_cpu_percent"`
}

// Cell is one workload at one client count (for the idle workload: the
// number of idle connections), every target.
type Cell struct {
	Workload string       `json:"workload"`
	Clients  int          `json:"clients"`
	Targets  []TargetCell `json:"targets"`
}

// TargetCell is one target's runs in a cell and their medians over the
// rounds that did not fail.
type TargetCell struct {
	Target string `json:"target"`
	Status string `json:"status"`
	// Reason says why the status is not ok (the first failure's error).
	Reason string      `json:"reason,omitempty"`
	Runs   []RunResult `json:"runs"`

	TPS   float64 `json:"tps"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// CPUPerTxnUs is the proxy's CPU time (user+system) per transaction
	// in microseconds; null without a proxy.
	CPUPerTxnUs *float64 `json:"proxy_cpu_us_per_txn"`
	// MachineCPUPerTxnUs and IdleShare are the medians of the runs'
	// (RunResult): what a transaction costs the machine as a whole, and
	// how much of it went unused. A proxy that serves more transactions
	// than PostgreSQL directly does so by costing the servers less per
	// transaction, and a proxy that is the serial point leaves CPUs idle.
	MachineCPUPerTxnUs *float64 `json:"machine_cpu_us_per_txn,omitempty"`
	IdleShare          *float64 `json:"machine_idle_share,omitempty"`
	// KiBPerConn is the idle workload's proxy memory per connection, from
	// the first round that did not fail, not the median: later rounds
	// reuse memory that the earlier ones' connections freed (Go's heap,
	// PgBouncer's slab caches) and read low. Every round is in Runs.
	KiBPerConn *float64 `json:"proxy_kib_per_conn,omitempty"`
	// ReplicaShare is the median over rounds of the share of the routed
	// transactions that a replica served (RouterCounters.ReplicaShare);
	// WriteTokensPerTxn the median of write tokens per routed
	// transaction. Both only for targets that read the router's counters.
	ReplicaShare      *float64 `json:"replica_share,omitempty"`
	WriteTokensPerTxn *float64 `json:"write_tokens_per_txn,omitempty"`
	// LoopSleepsPerTxn is the median of the router's event-loop waits
	// per routed transaction (RouterCounters.LoopSleepsPerTxn): what
	// tells a run where the loop rarely ran dry from one where it slept
	// and woke for most transactions.
	LoopSleepsPerTxn *float64 `json:"loop_sleeps_per_txn,omitempty"`
	// Failed sums pgbench's failed transactions over the runs.
	Failed int64 `json:"failed_transactions"`
	// Ratios maps the name of each baseline that runs in the cell to this
	// target's figures divided by the baseline's.
	Ratios map[string]Ratios `json:"ratios"`
	// Paired maps the name of each target of the same kind that comes
	// before this one in the cell (in the configured order) to the two
	// compared round by round: a proxy with the proxies, PostgreSQL
	// directly (direct-2shards) with PostgreSQL directly.
	Paired map[string]Paired `json:"paired,omitempty"`
}

// Ratios are a target's figures over a baseline's; null when either side
// lacks the figure.
type Ratios struct {
	TPS        *float64 `json:"tps"`
	P50        *float64 `json:"p50"`
	P99        *float64 `json:"p99"`
	CPUPerTxn  *float64 `json:"proxy_cpu_per_txn"`
	KiBPerConn *float64 `json:"proxy_kib_per_conn,omitempty"`
}

// Paired compares a target with another round by round: each figure is
// the median, over the rounds in which both ran, of the target's figure
// over the other's in the same round, and the counts say in how many of
// those rounds the target did better. Drift of the machine from round to
// round (a neighbour's load) moves both sides of a round alike, so these
// read through it where a ratio of the two medians can land on whichever
// side had its bad rounds in the middle.
type Paired struct {
	Rounds    int      `json:"rounds"`
	TPS       *float64 `json:"tps"`
	P50       *float64 `json:"p50"`
	CPUPerTxn *float64 `json:"proxy_cpu_per_txn"`
	// TPSHigher, P50Lower and CPULower count the rounds in which the
	// target's TPS was higher, its p50 lower, its proxy CPU per
	// transaction lower.
	TPSHigher int `json:"tps_higher"`
	P50Lower  int `json:"p50_lower"`
	CPULower  int `json:"proxy_cpu_lower"`
	// TPSInterval, P50Interval and CPUInterval are 95% confidence
	// intervals for those medians (medianInterval); null with fewer than
	// six rounds compared.
	TPSInterval *Interval `json:"tps_interval"`
	P50Interval *Interval `json:"p50_interval"`
	CPUInterval *Interval `json:"proxy_cpu_interval"`
}

// sameRounds calls fn with t's run and other's of each round both ran.
// Failed and idle runs do not count.
func sameRounds(t, other *TargetCell, fn func(r, o *RunResult)) {
	byRound := map[int]*RunResult{}
	for i, r := range other.Runs {
		if r.Error == "" && r.Idle == nil {
			byRound[r.Round] = &other.Runs[i]
		}
	}
	for i, r := range t.Runs {
		if o := byRound[r.Round]; o != nil && r.Error == "" && r.Idle == nil {
			fn(&t.Runs[i], o)
		}
	}
}

// pair compares t with other round by round (Paired).
func pair(t, other *TargetCell) Paired {
	var p Paired
	var tps, p50, cpu []float64
	sameRounds(t, other, func(r, o *RunResult) {
		p.Rounds++
		tps = appendSet(tps, ratioOf(r.TPS, o.TPS))
		p50 = appendSet(p50, ratioOf(r.P50Ms, o.P50Ms))
		cpu = appendSet(cpu, ratioOfPtr(r.CPUPerTxnUs, o.CPUPerTxnUs))
		if r.TPS > o.TPS {
			p.TPSHigher++
		}
		if r.P50Ms < o.P50Ms {
			p.P50Lower++
		}
		if r.CPUPerTxnUs != nil && o.CPUPerTxnUs != nil && *r.CPUPerTxnUs < *o.CPUPerTxnUs {
			p.CPULower++
		}
	})
	p.TPS, p.P50, p.CPUPerTxn = medianPtr(tps), medianPtr(p50), medianPtr(cpu)
	p.TPSInterval, p.P50Interval, p.CPUInterval = medianInterval(tps), medianInterval(p50), medianInterval(cpu)
	return p
}

// appendSet appends *v to xs, unless v is nil (a figure a run lacks).
func appendSet(xs []float64, v *float64) []float64 {
	if v == nil {
		return xs
	}
	return append(xs, *v)
}

// pairTargets sets the Paired comparisons of c's targets, each against
// every target of its kind before it: proxies against proxies, targets
// without a proxy against those without one.
func (r *Report) pairTargets(c *Cell) {
	for ti := range c.Targets {
		t := &c.Targets[ti]
		t.Paired = nil
		if !t.hasFigures() {
			continue
		}
		for oi := range c.Targets[:ti] {
			o := &c.Targets[oi]
			if r.hasProxy(o.Target) != r.hasProxy(t.Target) || !o.hasFigures() {
				continue
			}
			if p := pair(t, o); p.Rounds > 0 {
				if t.Paired == nil {
					t.Paired = map[string]Paired{}
				}
				t.Paired[o.Target] = p
			}
		}
	}
}

// RunResult is one round of one target in one cell.
type RunResult struct {
	Round int `json:"round"`
	// Error is set when the run failed; the figures are then zero.
	Error string `json:"error,omitempty"`

	// DurationSeconds is the run's pgbench -T: the settings' duration,
	// or longer for a target that starts a server per client at many
	// clients (Target.ConnectsServers).
	DurationSeconds int     `json:"duration_seconds,omitempty"`
	TPS             float64 `json:"tps,omitempty"`
	Transactions    int64   `json:"transactions,omitempty"`
	Failed          int64   `json:"failed_transactions,omitempty"`
	LatencyAvgMs    float64 `json:"latency_avg_ms,omitempty"`
	P50Ms           float64 `json:"p50_ms,omitempty"`
	P99Ms           float64 `json:"p99_ms,omitempty"`
	InitialConnMs   float64 `json:"initial_connection_ms,omitempty"`
	// ProxyCPUSeconds is the proxy's user+system CPU time during the run.
	ProxyCPUSeconds *float64 `json:"proxy_cpu_seconds,omitempty"`
	CPUPerTxnUs     *float64 `json:"proxy_cpu_us_per_txn,omitempty"`
	// MachineCPUPerTxnUs is the busy CPU time of the whole machine (all
	// CPUs: pgbench, the servers, the proxy, anything else) per
	// transaction, over the same window; IdleShare is the share of all
	// CPUs' time in it that was idle (0 to 1). From /proc/stat.
	MachineCPUPerTxnUs *float64 `json:"machine_cpu_us_per_txn,omitempty"`
	IdleShare          *float64 `json:"machine_idle_share,omitempty"`
	// Pgbench holds each pgbench's own summary, one per endpoint.
	Pgbench []Output `json:"pgbench,omitempty"`
	// Router is the change of the router's counters over the run, for
	// targets with Target.MetricsURL.
	Router *RouterCounters `json:"router,omitempty"`
	// Idle is the idle workload's measurement.
	Idle *IdleResult `json:"idle,omitempty"`
}

func newReport(cfg Config, pgbenchVersion string) *Report {
	r := &Report{
		Command:     cfg.Command,
		Environment: cfg.Environment,
		StartedAt:   time.Now().UTC(),
		Settings: Settings{
			Workloads:       slices.Clone(cfg.Workloads),
			Clients:         slices.Clone(cfg.Clients),
			DurationSeconds: int(cfg.Duration / time.Second),
			Rounds:          cfg.Rounds,
			MaxThreads:      cfg.MaxThreads,
			IdleConns:       cfg.IdleConns,
			WarmupSeconds:   int(max(cfg.Warmup, 0) / time.Second),
			Order:           OrderMatrix,
		},
		Cells: []Cell{},
	}
	r.Environment.Pgbench = pgbenchVersion
	if r.Environment.LoadAvgStart == "" {
		r.Environment.LoadAvgStart = loadAvg()
	}
	for _, t := range cfg.Targets {
		r.Targets = append(r.Targets, TargetInfo{Name: t.Name, Description: t.Description, Endpoints: len(t.Endpoints), Proxy: t.ProxyPID > 0,
			Process: t.Process, Pool: t.Pool, Workloads: slices.Clone(t.Workloads), RouterMetrics: t.MetricsURL != ""})
	}
	for _, b := range cfg.Baselines {
		if slices.ContainsFunc(cfg.Targets, func(t Target) bool { return t.Name == b }) {
			r.Baselines = append(r.Baselines, b)
		}
	}
	return r
}

// summarize computes each target cell's status, medians and ratios from its
// runs. Cells with a preset status (unsupported, n/a) keep it. Ratios
// divide by the baselines that run in the cell.
func (r *Report) summarize() {
	for ci := range r.Cells {
		c := &r.Cells[ci]
		for ti := range c.Targets {
			c.Targets[ti].summarize()
		}
		for ti := range c.Targets {
			t := &c.Targets[ti]
			t.Ratios = map[string]Ratios{}
			for _, b := range r.Baselines {
				base := c.target(b)
				if base == nil {
					continue // the baseline does not run in this cell
				}
				if !base.hasFigures() || !t.hasFigures() {
					t.Ratios[b] = Ratios{}
					continue
				}
				t.Ratios[b] = Ratios{
					TPS:        ratioOf(t.TPS, base.TPS),
					P50:        ratioOf(t.P50Ms, base.P50Ms),
					P99:        ratioOf(t.P99Ms, base.P99Ms),
					CPUPerTxn:  ratioOfPtr(t.CPUPerTxnUs, base.CPUPerTxnUs),
					KiBPerConn: ratioOfPtr(t.KiBPerConn, base.KiBPerConn),
				}
			}
		}
		r.pairTargets(c)
	}
	r.Goals = r.goals()
}

func (t *TargetCell) summarize() {
	if t.Status == StatusUnsupported || t.Status == StatusNotApplicable {
		return
	}
	t.Status, t.Reason = StatusOK, ""
	var tps, p50, p99, cpu, machine, idle, share, tokens, sleeps []float64
	var mem *float64
	t.Failed = 0
	for _, run := range t.Runs {
		if run.Error != "" {
			if t.Status == StatusOK {
				t.Status, t.Reason = StatusFailed, run.Error
			}
			continue
		}
		t.Failed += run.Failed
		if run.Idle != nil {
			if mem == nil {
				mem = ptr(run.Idle.KiBPerConn())
			}
			continue
		}
		tps = append(tps, run.TPS)
		p50 = append(p50, run.P50Ms)
		p99 = append(p99, run.P99Ms)
		cpu = appendSet(cpu, run.CPUPerTxnUs)
		machine = appendSet(machine, run.MachineCPUPerTxnUs)
		idle = appendSet(idle, run.IdleShare)
		if run.Router != nil {
			if v := run.Router.ReplicaShare(); v != nil {
				share = append(share, *v)
			}
			if v := run.Router.WriteTokensPerTxn(); v != nil {
				tokens = append(tokens, *v)
			}
			if v := run.Router.LoopSleepsPerTxn(); v != nil {
				sleeps = append(sleeps, *v)
			}
		}
	}
	t.TPS, t.P50Ms, t.P99Ms = median(tps), median(p50), median(p99)
	t.CPUPerTxnUs, t.KiBPerConn = medianPtr(cpu), mem
	t.MachineCPUPerTxnUs, t.IdleShare = medianPtr(machine), medianPtr(idle)
	t.ReplicaShare, t.WriteTokensPerTxn = medianPtr(share), medianPtr(tokens)
	t.LoopSleepsPerTxn = medianPtr(sleeps)
}

// medianPtr is the median of xs, or nil for none.
func medianPtr(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	return ptr(median(xs))
}

// hasFigures reports whether t has a run that did not fail.
func (t *TargetCell) hasFigures() bool {
	if t.Status == StatusUnsupported || t.Status == StatusNotApplicable {
		return false
	}
	return slices.ContainsFunc(t.Runs, func(r RunResult) bool { return r.Error == "" })
}

// target returns the cell's entry for the named target, or nil.
func (c *Cell) target(name string) *TargetCell {
	for i := range c.Targets {
		if c.Targets[i].Target == name {
			return &c.Targets[i]
		}
	}
	return nil
}

// Cell returns the cell of workload at clients, or nil.
func (r *Report) Cell(workload string, clients int) *Cell {
	for i := range r.Cells {
		if r.Cells[i].Workload == workload && r.Cells[i].Clients == clients {
			return &r.Cells[i]
		}
	}
	return nil
}

// Target returns the named target's entry in c, or nil.
func (c *Cell) Target(name string) *TargetCell { return c.target(name) }

// FailedCells counts target cells with StatusFailed.
func (r *Report) FailedCells() int {
	n := 0
	for _, c := range r.Cells {
		for _, t := range c.Targets {
			if t.Status == StatusFailed {
				n++
			}
		}
	}
	return n
}

// WriteJSON writes r as indented JSON followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport reads a report that WriteJSON wrote and summarizes its runs
// again, so that a report of an earlier run gets this version's figures
// (the round-by-round comparisons, for one) without running anything.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	if r.StartedAt.IsZero() || r.Cells == nil {
		return nil, errors.New("read report: not a shardline bench JSON report (no started_at or cells)")
	}
	r.summarize()
	return &r, nil
}

// median returns the median of xs, the mean of the middle two for an even
// count, and 0 for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratioOf is x/base, or nil when base is zero.
func ratioOf(x, base float64) *float64 {
	if base == 0 {
		return nil
	}
	return ptr(x / base)
}

func ratioOfPtr(x, base *float64) *float64 {
	if x == nil || base == nil {
		return nil
	}
	return ratioOf(*x, *base)
}

func ptr[T any](v T) *T { return &v }

// scale is *v times k, or nil.
func scale(v *float64, k float64) *float64 {
	if v == nil {
		return nil
	}
	return ptr(*v * k)
}
