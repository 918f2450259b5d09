package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// ownTargets reports whether workload runs on targets of its own (the
// replica workloads): its cells have a table of their own.
func ownTargets(workload string) bool {
	w, err := LookupWorkload(workload)
	return err == nil && w.OwnTargets
}

// isDefaultCell matches the cells of the main throughput table: pgbench
// workloads that run on the default targets.
func isDefaultCell(c Cell) bool { return c.Workload != WorkloadIdle && !ownTargets(c.Workload) }

// workloadCells matches the cells of one workload.
func workloadCells(name string) func(Cell) bool {
	return func(c Cell) bool { return c.Workload == name }
}

// baselinesIn returns the baselines that run in at least one cell that
// match selects, in the order of r.Baselines.
func (r *Report) baselinesIn(match func(Cell) bool) []string {
	var out []string
	for _, b := range r.Baselines {
		for _, c := range r.Cells {
			if match(c) && c.target(b) != nil {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// throughputTable returns the header and rows of a throughput table of
// the cells match selects: figures, with counters the router's replica
// share and write tokens per transaction, then per baseline that runs in
// those cells the TPS and p99 ratios, and the proxy CPU ratio when the
// baseline has a proxy; one row per target in each cell.
func (r *Report) throughputTable(match func(Cell) bool, counters bool) (header []string, rows [][]string) {
	bases := r.baselinesIn(match)
	header = []string{"WORKLOAD", "CLIENTS", "TARGET", "TPS", "P50_MS", "P99_MS", "PROXY_CPU_US/TXN", "MACHINE_CPU_US/TXN", "IDLE"}
	if counters {
		header = append(header, "REPLICA_SHARE", "TOKENS/TXN")
	}
	for _, b := range bases {
		header = append(header, "TPS/"+b, "P99/"+b)
		if r.hasProxy(b) {
			header = append(header, "CPU/"+b)
		}
	}
	header = append(header, "NOTE")
	for _, c := range r.Cells {
		if !match(c) {
			continue
		}
		for _, t := range c.Targets {
			row := []string{c.Workload, fmt.Sprint(c.Clients), t.Target}
			if t.hasFigures() {
				row = append(row, fmt.Sprintf("%.0f", t.TPS), fmt.Sprintf("%.3f", t.P50Ms), fmt.Sprintf("%.3f", t.P99Ms), fmtPtr(t.CPUPerTxnUs, "%.1f"),
					fmtPtr(t.MachineCPUPerTxnUs, "%.1f"), fmtPtr(scale(t.IdleShare, 100), "%.1f%%"))
				if counters {
					row = append(row, fmtPtr(scale(t.ReplicaShare, 100), "%.1f%%"), fmtPtr(t.WriteTokensPerTxn, "%.2f"))
				}
			} else {
				row = append(row, "-", "-", "-", "-", "-", "-")
				if counters {
					row = append(row, "-", "-")
				}
			}
			for _, b := range bases {
				ra := t.Ratios[b]
				row = append(row, fmtPtr(ra.TPS, "%.2f"), fmtPtr(ra.P99, "%.2f"))
				if r.hasProxy(b) {
					row = append(row, fmtPtr(ra.CPUPerTxn, "%.2f"))
				}
			}
			rows = append(rows, append(row, t.note()))
		}
	}
	return header, rows
}

// ownWorkloads are the workloads with targets of their own that have
// cells, in the order of the settings.
func (r *Report) ownWorkloads() []string {
	var out []string
	for _, name := range r.Settings.Workloads {
		if ownTargets(name) && slices.ContainsFunc(r.Cells, workloadCells(name)) {
			out = append(out, name)
		}
	}
	return out
}

// idleHeader and idleRows are the idle workload's table.
func (r *Report) idleHeader() []string {
	h := []string{"CONNS", "TARGET", "RSS_BEFORE_MIB", "RSS_AFTER_MIB", "KIB/CONN"}
	for _, b := range r.idleBaselines() {
		h = append(h, "KIB/CONN/"+b)
	}
	return append(h, "NOTE")
}

// idleBaselines are the baselines with a proxy that run in the idle cell.
func (r *Report) idleBaselines() []string {
	return slices.DeleteFunc(r.baselinesIn(workloadCells(WorkloadIdle)), func(b string) bool { return !r.hasProxy(b) })
}

func (r *Report) idleRows() [][]string {
	var rows [][]string
	for _, c := range r.Cells {
		if c.Workload != WorkloadIdle {
			continue
		}
		for _, t := range c.Targets {
			row := []string{fmt.Sprint(c.Clients), t.Target}
			if first := t.firstIdle(); first != nil && t.KiBPerConn != nil {
				row = append(row, fmt.Sprintf("%.1f", float64(first.RSSBeforeKiB)/1024), fmt.Sprintf("%.1f", float64(first.RSSAfterKiB)/1024),
					fmtPtr(t.KiBPerConn, "%.1f"))
			} else {
				row = append(row, "-", "-", "-")
			}
			for _, b := range r.idleBaselines() {
				row = append(row, fmtPtr(t.Ratios[b].KiBPerConn, "%.2f"))
			}
			rows = append(rows, append(row, t.note()))
		}
	}
	return rows
}

// firstIdle returns the first successful idle run, the one KiBPerConn
// comes from, or nil.
func (t *TargetCell) firstIdle() *IdleResult {
	for _, r := range t.Runs {
		if r.Error == "" && r.Idle != nil {
			return r.Idle
		}
	}
	return nil
}

// note is the short status of a target cell for tables.
func (t *TargetCell) note() string {
	switch t.Status {
	case StatusOK:
		return ""
	case StatusFailed:
		n := 0
		for _, r := range t.Runs {
			if r.Error != "" {
				n++
			}
		}
		return fmt.Sprintf("FAILED %d/%d", n, len(t.Runs))
	}
	return t.Status
}

func (r *Report) hasProxy(target string) bool {
	return slices.ContainsFunc(r.Targets, func(t TargetInfo) bool { return t.Name == target && t.Proxy })
}

func fmtPtr(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

// WriteTable writes r for people: the throughput table, one table per
// replica workload, the idle table, and the reasons behind every cell that
// is not ok.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	if h, rows := r.throughputTable(isDefaultCell, false); len(rows) > 0 {
		writeAligned(&b, h, rows, 3)
	}
	for _, name := range r.ownWorkloads() {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		h, rows := r.throughputTable(workloadCells(name), true)
		writeAligned(&b, h, rows, 3)
	}
	if rows := r.idleRows(); len(rows) > 0 {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		writeAligned(&b, r.idleHeader(), rows, 2)
	}
	if rows := r.goalRows(); len(rows) > 0 {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		writeAligned(&b, goalHeader(), rows, 2)
	}
	if notes := r.notes(); len(notes) > 0 {
		b.WriteString("\nnotes:\n")
		for _, n := range notes {
			b.WriteString("  " + n + "\n")
		}
	}
	if r.Interrupted != "" {
		fmt.Fprintf(&b, "\nINTERRUPTED: %s (partial results)\n", r.Interrupted)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// notes are one line per failed target cell, with its error, and one line
// per target and reason for cells not run (unsupported, n/a), naming the
// workloads it applies to.
func (r *Report) notes() []string {
	type skipped struct {
		target, status, reason string
		workloads              []string
	}
	var (
		out   []string
		skips []*skipped
		index = map[string]*skipped{}
	)
	for _, c := range r.Cells {
		for _, t := range c.Targets {
			switch t.Status {
			case StatusOK:
			case StatusFailed:
				out = append(out, fmt.Sprintf("%s %s c=%d: failed: %s", t.Target, c.Workload, c.Clients, t.Reason))
			default:
				key := t.Target + "\x00" + t.Status + "\x00" + t.Reason
				s := index[key]
				if s == nil {
					s = &skipped{target: t.Target, status: t.Status, reason: t.Reason}
					index[key] = s
					skips = append(skips, s)
				}
				if !slices.Contains(s.workloads, c.Workload) {
					s.workloads = append(s.workloads, c.Workload)
				}
			}
		}
	}
	for _, s := range skips {
		out = append(out, fmt.Sprintf("%s (%s): %s: %s", s.target, strings.Join(s.workloads, ", "), s.status, s.reason))
	}
	return append(out, r.longerRuns()...)
}

// longerRuns notes the cells whose runs lasted longer than the settings
// say (RunResult.DurationSeconds), one line per target and client count.
func (r *Report) longerRuns() []string {
	type key struct {
		target  string
		clients int
	}
	seconds := map[key]int{}
	var keys []key
	for _, c := range r.Cells {
		for _, t := range c.Targets {
			for _, run := range t.Runs {
				if run.DurationSeconds <= r.Settings.DurationSeconds {
					continue
				}
				k := key{t.Target, c.Clients}
				if _, ok := seconds[k]; !ok {
					keys = append(keys, k)
				}
				seconds[k] = max(seconds[k], run.DurationSeconds)
			}
		}
	}
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s at %d clients: runs of %d s instead of %d s: every client connection starts a server process, "+
			"and pgbench counts the time they take to start (TPS is a rate, so it stays comparable)", k.target, k.clients, seconds[k], r.Settings.DurationSeconds))
	}
	return out
}

// writeAligned writes an aligned text table; the first textCols columns
// align left, the others right, the last (a note) left.
func writeAligned(b *strings.Builder, header []string, rows [][]string, textCols int) {
	all := append([][]string{header}, rows...)
	widths := make([]int, len(header))
	for _, row := range all {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, row := range all {
		var line strings.Builder
		for i, cell := range row {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			if i < textCols || i == len(row)-1 {
				line.WriteString(cell + pad)
			} else {
				line.WriteString(pad + cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// WriteMarkdown writes r as a Markdown document: the command, the machine,
// the targets, one table per workload, the round-by-round table, the idle
// table and the notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Shardline benchmark: router vs PgBouncer vs PostgreSQL\n\n")
	fmt.Fprintf(&b, "Measured %s (%s). How it is measured: [docs/bench.md](../bench.md).\n\n",
		r.StartedAt.Format("2006-01-02 15:04 MST"), r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
	if r.Command != "" {
		fmt.Fprintf(&b, "Command:\n\n```sh\n%s\n```\n\n", r.Command)
	}
	if r.Interrupted != "" {
		fmt.Fprintf(&b, "**Interrupted: %s (partial results).**\n\n", r.Interrupted)
	}
	e := r.Environment
	b.WriteString("## Machine\n\n| | |\n| --- | --- |\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, mdEscape(v))
		}
	}
	row("CPUs (nproc)", fmt.Sprint(e.NProc))
	row("CPU model", e.CPUModel)
	if e.MemTotalMiB > 0 {
		row("Memory", fmt.Sprintf("%.1f GiB", float64(e.MemTotalMiB)/1024))
	}
	row("Kernel", e.Kernel)
	row("PostgreSQL", e.PostgreSQL)
	row("PgBouncer", e.PgBouncer)
	row("pgbench", e.Pgbench)
	row("Go", e.GoVersion)
	row("Shardline revision (router)", e.Shardline)
	row("Bench revision", e.Bench)
	row("Load average at start / end", strings.TrimSpace(e.LoadAvgStart+" / "+e.LoadAvgEnd))

	s := r.Settings
	b.WriteString("\n## Settings\n\n")
	order := "the rounds of a cell back to back"
	if s.Order == OrderMatrix {
		order = "each round going over every cell in turn (the idle cell's rounds first)"
	}
	fmt.Fprintf(&b, "Each run is `pgbench -T %d`; %d round(s) of every cell, %s, the targets alternating within each round of a cell; figures are medians over rounds. "+
		"pgbench: min(clients, %d) processes of one thread each, for every target (for the -2shards targets one per shard: per tenant, database or server), the clients split between them. Idle workload: %d connections. Warm-up: %d s per target.\n\n",
		s.DurationSeconds, s.Rounds, order, s.MaxThreads, s.IdleConns, s.WarmupSeconds)
	b.WriteString("| target | measured process | server connections | what | proxy CPU with no clients working |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.Name, mdEscape(orNone(t.Process)), mdEscape(orNone(t.Pool)),
			mdEscape(t.Description), fmtPtr(t.IdleCPUPercent, "%.1f%% of a CPU"))
	}

	if rows := r.goalRows(); len(rows) > 0 {
		b.WriteString("\n## Goals\n\n" +
			"The router's performance goals (README, Performance), each held against the round-by-round comparison below " +
			"(memory: the idle table). FIGURE is the median over rounds of the per-round ratio; 95% INTERVAL its confidence interval, " +
			"from six rounds on. A verdict is \"within noise\" when that interval reaches across the bound: more rounds, " +
			"or a quieter machine, could turn it.\n\n")
		writeMarkdownTable(&b, goalHeader(), rows)
		for _, g := range r.Goals {
			if g.Detail != "" {
				fmt.Fprintf(&b, "\n- %s at %s: %s.", g.Workload, clientsText(g.Clients), mdEscape(g.Detail))
			}
		}
		b.WriteByte('\n')
	}

	b.WriteString("\n## Results\n\n")
	b.WriteString("TPS: transactions per second (sum over a target's pgbench processes). P50/P99: latency percentiles " +
		"of every transaction in pgbench's per-transaction log, in ms. PROXY_CPU_US/TXN: user+system CPU time of the proxy " +
		"process (see the settings: PgBouncer, or the process that runs the router) per transaction, in µs; n/a for PostgreSQL directly. " +
		"MACHINE_CPU_US/TXN: busy CPU time of the whole machine (all CPUs, from /proc/stat: pgbench, the servers, the proxy and anything else) " +
		"per transaction over the same window, in µs, so that a proxy's TPS against direct reads as what it costs and saves the machine; " +
		"IDLE: the share of all CPUs' time in that window that went unused. " +
		"X/b columns: this target's figure divided by baseline b's in the same cell (TPS: higher is better; P99 and CPU: lower is better).")
	if len(r.ownWorkloads()) > 0 {
		b.WriteString(" Replica workloads: REPLICA_SHARE is the share of the transactions the router routed that a replica served, " +
			"TOKENS/TXN the read-your-writes tokens taken per routed transaction, both from the router's Prometheus counters read " +
			"before and after each run (medians over rounds).")
	}
	b.WriteByte('\n')
	for _, name := range s.Workloads {
		if name == WorkloadIdle {
			continue
		}
		h, rows := r.throughputTable(workloadCells(name), ownTargets(name))
		if len(rows) == 0 {
			continue
		}
		wl, _ := LookupWorkload(name)
		fmt.Fprintf(&b, "\n### %s\n\n%s.\n\n", name, mdEscape(wl.Description))
		writeMarkdownTable(&b, h[1:], dropFirst(rows))
	}
	if rows := r.pairedRows(); len(rows) > 0 {
		b.WriteString("\n### round by round\n\nEach target against each target of its kind before it in the cell (a proxy against the proxies, " +
			"direct-2shards against direct), compared within each round: the median over " +
			"the rounds both ran of this round's figure over the other's; in brackets, from six rounds on, a 95% confidence interval " +
			"for that median (the k-th smallest and k-th largest of the per-round ratios, k from the binomial distribution: it assumes " +
			"nothing of the ratios' distribution); and in parentheses the rounds in which this target did better " +
			"(TPS higher, p50 and CPU lower) out of the rounds compared. Drift between rounds moves both sides of a round alike; " +
			"a ratio of medians (the tables above) can land on whichever side had its slow rounds in the middle.\n\n")
		writeMarkdownTable(&b, []string{"WORKLOAD", "CLIENTS", "TARGET", "AGAINST", "TPS", "P50", "PROXY_CPU/TXN"}, rows)
	}
	if rows := r.idleRows(); len(rows) > 0 {
		fmt.Fprintf(&b, "\n### idle\n\n%d connections opened (one `SELECT 1` each) and held idle; proxy memory per connection = "+
			"(RSS with all open - RSS before) / connections, from the first round, which runs before any other workload "+
			"(later rounds reuse memory the earlier connections freed; every round is in the JSON report).\n\n", s.IdleConns)
		writeMarkdownTable(&b, r.idleHeader(), rows)
	}
	if notes := r.notes(); len(notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", mdEscape(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// pairedRows are the round-by-round comparisons (TargetCell.Paired) of
// every cell, in the order the cells ran and the targets are configured.
func (r *Report) pairedRows() [][]string {
	var rows [][]string
	for _, c := range r.Cells {
		for _, t := range c.Targets {
			for _, o := range c.Targets {
				p, ok := t.Paired[o.Target]
				if !ok {
					continue
				}
				fig := func(v *float64, in *Interval, better int) string {
					if v == nil {
						return "n/a"
					}
					return fmt.Sprintf("%.2f%s (%d/%d)", *v, fmtInterval(in), better, p.Rounds)
				}
				rows = append(rows, []string{c.Workload, fmt.Sprint(c.Clients), t.Target, o.Target,
					fig(p.TPS, p.TPSInterval, p.TPSHigher), fig(p.P50, p.P50Interval, p.P50Lower), fig(p.CPUPerTxn, p.CPUInterval, p.CPULower)})
			}
		}
	}
	return rows
}

// clientsText is "1 client" or "n clients".
func clientsText(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}

// fmtInterval is " [low, high]", or "" for none.
func fmtInterval(in *Interval) string {
	if in == nil {
		return ""
	}
	return fmt.Sprintf(" [%.2f, %.2f]", in.Low, in.High)
}

// orNone is s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func dropFirst(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = r[1:]
	}
	return out
}

func writeMarkdownTable(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString(" --- |")
	}
	b.WriteByte('\n')
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = mdEscape(c)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
}

// mdEscape keeps a value inside one Markdown table cell.
func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
