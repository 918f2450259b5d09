package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// warmupClients is the client count of the warm-up run per target.
const warmupClients = 8

// Run benchmarks cfg (after WithDefaults and Validate): a cell per workload
// and client count, Rounds rounds of every cell, each round of a cell every
// target once (A B C, B C A, C A B ...: see roundOrder), so drift of the
// machine (caches, CPU frequency, autovacuum, neighbours) hits every target
// alike, and no target always runs right after the same other one. The
// rounds go over the whole matrix (round 1 of every cell, then round 2), so
// a slow spell hits one round of several cells rather than a whole cell.
// One line per run goes to cfg.Progress.
//
// A failed run does not end Run: it is recorded in its cell (StatusFailed,
// with pgbench's complaint) and the matrix goes on, so one target's failure
// does not discard the others' figures. A cancelled ctx ends Run with an
// error wrapping the context's cause, and the report of the runs finished so
// far. Run returns a nil report only for an invalid config or a missing
// pgbench.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pb, err := NewPgbench(cfg.PgbenchPath, cfg.Logger)
	if err != nil {
		return nil, err
	}
	version, err := pb.Version(ctx)
	if err != nil {
		return nil, err
	}
	workDir := cfg.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "shardline-bench-"); err != nil {
			return nil, fmt.Errorf("bench work directory: %w", err)
		}
		defer os.RemoveAll(workDir)
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench work directory: %w", err)
	}

	rep := newReport(cfg, version)
	r := &runner{cfg: cfg, pb: pb, logDir: workDir, rep: rep}
	err = r.run(ctx)
	rep.FinishedAt = time.Now().UTC()
	rep.Environment.LoadAvgEnd = loadAvg()
	rep.summarize()
	if err != nil {
		rep.Interrupted = err.Error()
	}
	return rep, err
}

// runner is the state of one Run.
type runner struct {
	cfg    Config
	pb     *Pgbench
	logDir string
	rep    *Report

	total, done int
	started     time.Time
}

func (r *runner) run(ctx context.Context) error {
	cfg := r.cfg
	type cellSpec struct {
		w       Workload
		clients int
	}
	// The idle workload runs first, on proxies that have served only the
	// warm-up: memory that connections free stays with the process (Go's
	// heap, PgBouncer's slab caches) and would hide the growth of a later
	// measurement.
	var cells []cellSpec
	if slices.Contains(cfg.Workloads, WorkloadIdle) {
		w, _ := LookupWorkload(WorkloadIdle)
		cells = append(cells, cellSpec{w, cfg.IdleConns})
	}
	for _, name := range cfg.Workloads {
		w, _ := LookupWorkload(name) // validated
		if w.Idle {
			continue
		}
		for _, c := range cfg.Clients {
			cells = append(cells, cellSpec{w, c})
		}
	}
	if err := r.sampleIdleCPU(ctx); err != nil {
		return err
	}
	if err := r.warmup(ctx); err != nil {
		return err
	}
	r.started = time.Now()
	// Every cell is laid out before the first run, holding only the
	// targets that run its workload; it joins the report with its first
	// run, so an interrupted run reports only the cells it began.
	type plan struct {
		spec     cellSpec
		cell     Cell
		targets  []Target
		runnable []int // the cell's targets that run, rotated among themselves
	}
	plans := make([]plan, len(cells))
	for ci, spec := range cells {
		p := plan{spec: spec, cell: Cell{Workload: spec.w.Name, Clients: spec.clients}}
		for ti, t := range cfg.Targets {
			if !t.runs(spec.w) {
				continue
			}
			tc := TargetCell{Target: t.Name, Runs: []RunResult{}}
			tc.Status, tc.Reason = applicability(cfg.Targets, ti, spec.w, spec.clients)
			if tc.Status == "" {
				p.runnable = append(p.runnable, len(p.cell.Targets))
			}
			p.cell.Targets = append(p.cell.Targets, tc)
			p.targets = append(p.targets, t)
		}
		plans[ci] = p
		r.total += len(p.runnable) * cfg.Rounds
	}
	runnable := make([][]int, len(plans))
	for ci, p := range plans {
		runnable[ci] = p.runnable
	}
	idleFirst := len(plans) > 0 && plans[0].spec.w.Idle
	for _, st := range schedule(runnable, idleFirst, cfg.Rounds) {
		p := plans[st.cell]
		if st.cell == len(r.rep.Cells) { // cells begin in their order
			r.rep.Cells = append(r.rep.Cells, p.cell)
		}
		t := p.targets[st.target]
		res := r.runOne(ctx, t, p.spec.w, p.spec.clients)
		if ctx.Err() != nil {
			return fmt.Errorf("bench interrupted: %w", context.Cause(ctx))
		}
		res.Round = st.round
		tc := &r.rep.Cells[st.cell].Targets[st.target]
		tc.Runs = append(tc.Runs, res)
		r.done++
		r.progress(t, p.spec.w, p.spec.clients, st.round, res)
	}
	return nil
}

// step is one run of a schedule: a target (an index into its cell's
// targets) in a round (from 1) of a cell (an index into the cells).
type step struct{ cell, round, target int }

// schedule orders the runs of cells whose runnable targets are given, in
// rounds rounds. With idleFirst the first cell (the idle one) runs all its
// rounds first. The other cells take turns round by round: round 1 of
// every cell, then round 2 of every cell, and so on, so a slow spell of the
// machine (a neighbour's job on the host) lands in one round of several
// cells, where the median sets it aside, rather than in every round of one
// cell. Within a round of a cell the targets run in roundOrder.
func schedule(runnable [][]int, idleFirst bool, rounds int) []step {
	var steps []step
	cellRound := func(ci, round int) {
		for _, k := range roundOrder(len(runnable[ci]), round) {
			steps = append(steps, step{cell: ci, round: round, target: runnable[ci][k]})
		}
	}
	first := 0
	if idleFirst && len(runnable) > 0 {
		for round := 1; round <= rounds; round++ {
			cellRound(0, round)
		}
		first = 1
	}
	for round := 1; round <= rounds; round++ {
		for ci := first; ci < len(runnable); ci++ {
			cellRound(ci, round)
		}
	}
	return steps
}

// roundOrder is the order of n targets in round (from 1): the configured
// order rotated by one place per round. Over n rounds every target runs
// once in every position, so a position's share of the drift (the first
// run after a cell's setup, the run after the target that loads the
// machine most) does not stay with one target.
func roundOrder(n, round int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = (i + round - 1) % n
	}
	return order
}

// applicability returns a preset status and its reason when target
// targets[i], which runs w (Target.runs), does not run it at clients, and
// "" when it does.
func applicability(targets []Target, i int, w Workload, clients int) (status, reason string) {
	t := targets[i]
	if why, ok := t.Unsupported[w.Name]; ok {
		return StatusUnsupported, why
	}
	if w.Idle && t.ProxyPID == 0 {
		return StatusNotApplicable, "no proxy process to measure"
	}
	if w.Idle {
		// A second target on the same process would read the memory the
		// first one's connections freed.
		for _, prev := range targets[:i] {
			if prev.ProxyPID == t.ProxyPID && prev.runs(w) {
				return StatusNotApplicable, "same proxy process as " + prev.Name + ", measured there"
			}
		}
	}
	if !w.Idle && clients < len(t.Endpoints) {
		return StatusNotApplicable, fmt.Sprintf("needs at least %d clients, one per endpoint", len(t.Endpoints))
	}
	return "", ""
}

// sampleIdleCPU measures each proxy's CPU use while no client works, over
// one shared window of cfg.IdleSample.
func (r *runner) sampleIdleCPU(ctx context.Context) error {
	if r.cfg.IdleSample <= 0 {
		return nil
	}
	before := map[int]ProcStat{}
	for _, t := range r.cfg.Targets {
		if t.ProxyPID > 0 {
			if st, err := ReadProcStat(t.ProxyPID); err == nil {
				before[t.ProxyPID] = st
			}
		}
	}
	if len(before) == 0 {
		return nil
	}
	start := time.Now()
	if err := sleepCtx(ctx, r.cfg.IdleSample); err != nil {
		return fmt.Errorf("bench interrupted: %w", err)
	}
	elapsed := time.Since(start)
	for i, t := range r.cfg.Targets {
		b, ok := before[t.ProxyPID]
		if !ok {
			continue
		}
		after, err := ReadProcStat(t.ProxyPID)
		if err != nil {
			continue
		}
		pct := 100 * (after.CPU() - b.CPU()).Seconds() / elapsed.Seconds()
		r.rep.Targets[i].IdleCPUPercent = ptr(pct)
		fmt.Fprintf(r.cfg.Progress, "idle %s: proxy uses %.1f%% of a CPU with no clients working\n", t.Name, pct)
	}
	return nil
}

// warmup runs select-simple once per target, unreported.
func (r *runner) warmup(ctx context.Context) error {
	if r.cfg.Warmup <= 0 {
		return nil
	}
	w, _ := LookupWorkload(WorkloadSelectSimple)
	for _, t := range r.cfg.Targets {
		clients := max(warmupClients, len(t.Endpoints))
		res := r.runPgbench(ctx, t, w, clients, r.cfg.Warmup, false)
		if ctx.Err() != nil {
			return fmt.Errorf("bench interrupted: %w", context.Cause(ctx))
		}
		if res.Error != "" {
			r.cfg.Logger.Warn("warm-up failed", "target", t.Name, "err", res.Error)
			fmt.Fprintf(r.cfg.Progress, "warm-up %s: FAILED: %s\n", t.Name, res.Error)
			continue
		}
		fmt.Fprintf(r.cfg.Progress, "warm-up %s: %.0f tps\n", t.Name, res.TPS)
	}
	return nil
}

// A target that starts a server process per client (Target.ConnectsServers)
// runs at least manyServersDuration at more than manyServersClients
// clients: pgbench's -T counts the connecting, and 256 server processes
// took longer to start than a 3 s run on a 2-core machine (pgbench then
// counts no transaction).
const (
	manyServersClients  = 64
	manyServersDuration = 10 * time.Second
)

// runOne runs one round of t in a cell.
func (r *runner) runOne(ctx context.Context, t Target, w Workload, clients int) RunResult {
	if w.Idle {
		res, err := holdIdle(ctx, t.Endpoints, clients, t.ProxyPID)
		if err != nil {
			return RunResult{Error: err.Error()}
		}
		return RunResult{Idle: &res}
	}
	return r.runPgbench(ctx, t, w, clients, runDuration(t, clients, r.cfg.Duration), true)
}

// runDuration is how long t's runs at clients last when the settings say d.
func runDuration(t Target, clients int, d time.Duration) time.Duration {
	if t.ConnectsServers && clients > manyServersClients {
		return max(d, manyServersDuration)
	}
	return d
}

// runEndpoints is where a run's pgbench processes go: a target with one
// endpoint gets one process per pgbench thread (min(clients, maxThreads)),
// so every target runs as router-2shards must (one process per tenant):
// the same processes, clients and threads, whatever the target.
func runEndpoints(eps []Endpoint, clients, maxThreads int) []Endpoint {
	if n := min(clients, maxThreads); len(eps) == 1 && n > 1 {
		return slices.Repeat(eps, n)
	}
	return eps
}

// runPgbench runs one pgbench per endpoint of t at once, the clients split
// between them, and measures the proxy's CPU time around them. A reported
// run (not the warm-up) also reads pgbench's transaction logs and the
// router's counters.
func (r *runner) runPgbench(ctx context.Context, t Target, w Workload, clients int, d time.Duration, reported bool) RunResult {
	if t.Ready != nil {
		if err := t.Ready(ctx); err != nil {
			return RunResult{Error: err.Error()}
		}
	}
	eps := runEndpoints(t.Endpoints, clients, r.cfg.MaxThreads)
	perClients, perThreads := split(clients, r.cfg.MaxThreads, len(eps))
	// The router's counters are read outside the CPU window: a scrape
	// costs the router CPU time of its own.
	var metricsBefore RouterCounters
	if reported && t.MetricsURL != "" {
		var err error
		if metricsBefore, err = ScrapeRouter(ctx, t.MetricsURL); err != nil {
			return RunResult{Error: err.Error()}
		}
	}
	var cpuBefore ProcStat
	if t.ProxyPID > 0 {
		var err error
		if cpuBefore, err = ReadProcStat(t.ProxyPID); err != nil {
			return RunResult{Error: err.Error()}
		}
	}
	machineBefore, machineErr := ReadMachineCPU()
	logDir := ""
	if reported {
		logDir = r.logDir
	}
	type leg struct {
		out Output
		lat []int64
		err error
	}
	legs := make([]leg, len(eps))
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			legs[i].out, legs[i].lat, legs[i].err = r.pb.Bench(ctx, BenchRun{
				Target: t.Name, Endpoint: e, Workload: w,
				Clients: perClients[i], Threads: perThreads[i], Duration: d, LogDir: logDir,
			})
		}()
	}
	wg.Wait()

	res := RunResult{DurationSeconds: int(d / time.Second)}
	var errs []error
	var lat []int64
	var latSum float64
	for _, l := range legs {
		if l.err != nil {
			errs = append(errs, l.err)
			continue
		}
		res.Pgbench = append(res.Pgbench, l.out)
		res.TPS += l.out.TPS
		res.Transactions += l.out.Transactions
		res.Failed += l.out.Failed
		res.InitialConnMs = max(res.InitialConnMs, l.out.InitialConnMs)
		latSum += l.out.LatencyAvgMs * float64(l.out.Transactions)
		lat = append(lat, l.lat...)
	}
	if t.ProxyPID > 0 {
		cpuAfter, err := ReadProcStat(t.ProxyPID)
		if err != nil {
			errs = append(errs, fmt.Errorf("proxy of target %s: %w", t.Name, err))
		} else if len(errs) == 0 {
			sec := (cpuAfter.CPU() - cpuBefore.CPU()).Seconds()
			res.ProxyCPUSeconds = ptr(sec)
			if res.Transactions > 0 {
				res.CPUPerTxnUs = ptr(sec * 1e6 / float64(res.Transactions))
			}
		}
	}
	if machineErr == nil && len(errs) == 0 {
		// Without /proc/stat (not Linux) the figures are left out.
		if after, err := ReadMachineCPU(); err == nil {
			busy, idle := after.Since(machineBefore)
			res.IdleShare = ptr(idle)
			if res.Transactions > 0 {
				res.MachineCPUPerTxnUs = ptr(busy.Seconds() * 1e6 / float64(res.Transactions))
			}
		}
	}
	if reported && t.MetricsURL != "" && len(errs) == 0 {
		after, err := ScrapeRouter(ctx, t.MetricsURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
		} else {
			res.Router = ptr(after.Sub(metricsBefore))
		}
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return RunResult{Error: strings.Join(msgs, "; ")}
	}
	if res.Transactions > 0 {
		res.LatencyAvgMs = latSum / float64(res.Transactions)
	}
	if reported {
		s := summarizeLatencies(lat)
		res.P50Ms, res.P99Ms = s.p50, s.p99
	}
	return res
}

// progress writes one line about a finished run.
func (r *runner) progress(t Target, w Workload, clients, round int, res RunResult) {
	width := 0
	for _, t := range r.cfg.Targets {
		width = max(width, len(t.Name))
	}
	head := fmt.Sprintf("[%d/%d] %-15s c=%-4d round %d/%d %-*s", r.done, r.total, w.Name, clients, round, r.cfg.Rounds, width, t.Name)
	eta := ""
	if r.done > 0 && r.done < r.total {
		per := time.Since(r.started) / time.Duration(r.done)
		eta = fmt.Sprintf("  eta %v", (per * time.Duration(r.total-r.done)).Round(time.Second))
	}
	switch {
	case res.Error != "":
		fmt.Fprintf(r.cfg.Progress, "%s FAILED: %s%s\n", head, res.Error, eta)
	case res.Idle != nil:
		fmt.Fprintf(r.cfg.Progress, "%s %d idle conns: rss %d -> %d KiB, %.1f KiB/conn%s\n",
			head, res.Idle.Conns, res.Idle.RSSBeforeKiB, res.Idle.RSSAfterKiB, res.Idle.KiBPerConn(), eta)
	default:
		counters := ""
		if c := res.Router; c != nil {
			if w.OwnTargets {
				counters = fmt.Sprintf("  replica share %s  write tokens/txn %s",
					fmtPtr(scale(c.ReplicaShare(), 100), "%.1f%%"), fmtPtr(c.WriteTokensPerTxn(), "%.2f"))
			}
			counters += "  loop sleeps/txn " + fmtPtr(c.LoopSleepsPerTxn(), "%.2f")
		}
		fmt.Fprintf(r.cfg.Progress, "%s %10.1f tps  p50 %.3f ms  p99 %.3f ms  proxy cpu/txn %s  machine cpu/txn %s  idle %s%s%s\n",
			head, res.TPS, res.P50Ms, res.P99Ms, fmtPtr(res.CPUPerTxnUs, "%.1f us"), fmtPtr(res.MachineCPUPerTxnUs, "%.1f us"), fmtPtr(scale(res.IdleShare, 100), "%.1f%%"), counters, eta)
	}
}

// Init runs pgbench -i -s SCALE -q on e with the pgbench found as
// FindPgbench("") finds it; see (*Pgbench).Init.
func Init(ctx context.Context, e Endpoint, scale int) error {
	pb, err := NewPgbench("", nil)
	if err != nil {
		return err
	}
	return pb.Init(ctx, "init", e, scale)
}
