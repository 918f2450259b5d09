package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Report is the outcome of Run. Its JSON field names are stable; figures
// that cannot be computed (a ratio to a zero baseline) are 0.
type Report struct {
	Workload        string `json:"workload"`
	Clients         int    `json:"clients"`
	Threads         int    `json:"threads"`
	DurationSeconds int    `json:"duration_seconds"`
	Rounds          int    `json:"rounds"`
	// Pgbench is pgbench's version line.
	Pgbench string `json:"pgbench_version"`
	// Baseline names the first target, the denominator of every ratio.
	Baseline string       `json:"baseline"`
	Modes    []ModeReport `json:"modes"`
}

// ModeReport holds one query mode's results, targets in Config order.
type ModeReport struct {
	Mode    string         `json:"mode"`
	Targets []TargetReport `json:"targets"`
}

// TargetReport is one target's runs in one mode and their medians.
type TargetReport struct {
	Target string      `json:"target"`
	Runs   []RunResult `json:"runs"`
	// TPSMedian and LatencyMedianMs are medians over Runs (the mean of the
	// two middle values for an even count).
	TPSMedian       float64 `json:"tps_median"`
	LatencyMedianMs float64 `json:"latency_median_ms"`
	// TPSRatio is TPSMedian over the baseline's; LatencyRatio likewise.
	// Both are 1 for the baseline itself.
	TPSRatio     float64 `json:"tps_ratio"`
	LatencyRatio float64 `json:"latency_ratio"`
	// Failed sums the failed transactions of Runs.
	Failed int64 `json:"failed"`
}

// RunResult is one pgbench run: its round (from 1) and what it reported.
type RunResult struct {
	Round int `json:"round"`
	Output
}

func newReport(cfg Config, version string) *Report {
	r := &Report{
		Workload:        cfg.Workload,
		Clients:         cfg.Clients,
		Threads:         cfg.threads(),
		DurationSeconds: int(cfg.Duration.Seconds()),
		Rounds:          cfg.Rounds,
		Pgbench:         version,
		Baseline:        cfg.Targets[0].Name,
	}
	for _, m := range cfg.Modes {
		mr := ModeReport{Mode: m}
		for _, t := range cfg.Targets {
			mr.Targets = append(mr.Targets, TargetReport{Target: t.Name, Runs: []RunResult{}})
		}
		r.Modes = append(r.Modes, mr)
	}
	return r
}

// summarize computes the medians, ratios and failure sums from the runs.
func (r *Report) summarize() {
	for mi := range r.Modes {
		ts := r.Modes[mi].Targets
		for ti := range ts {
			t := &ts[ti]
			var tps, lat []float64
			t.Failed = 0
			for _, run := range t.Runs {
				tps = append(tps, run.TPS)
				lat = append(lat, run.LatencyAvgMs)
				t.Failed += run.Failed
			}
			t.TPSMedian = median(tps)
			t.LatencyMedianMs = median(lat)
		}
		for ti := range ts {
			ts[ti].TPSRatio = ratio(ts[ti].TPSMedian, ts[0].TPSMedian)
			ts[ti].LatencyRatio = ratio(ts[ti].LatencyMedianMs, ts[0].LatencyMedianMs)
		}
	}
}

// Ratio returns the TPS ratio of target to the baseline in mode, and
// whether the report has that mode and target.
func (r *Report) Ratio(mode, target string) (float64, bool) {
	for _, m := range r.Modes {
		if m.Mode != mode {
			continue
		}
		for _, t := range m.Targets {
			if t.Target == target {
				return t.TPSRatio, true
			}
		}
	}
	return 0, false
}

// WriteTable writes r as an aligned text table, one row per mode and
// target: mode, target, runs, median TPS, median mean latency in ms, TPS
// ratio to the baseline, failed transactions.
func (r *Report) WriteTable(w io.Writer) error {
	rows := [][]string{{"MODE", "TARGET", "RUNS", "TPS_MEDIAN", "LATENCY_MS_MEDIAN", "TPS_RATIO", "FAILED"}}
	for _, m := range r.Modes {
		for _, t := range m.Targets {
			rows = append(rows, []string{
				m.Mode,
				t.Target,
				fmt.Sprint(len(t.Runs)),
				fmt.Sprintf("%.1f", t.TPSMedian),
				fmt.Sprintf("%.3f", t.LatencyMedianMs),
				fmt.Sprintf("%.2f", t.TPSRatio),
				fmt.Sprint(t.Failed),
			})
		}
	}
	// Text columns align left, numbers right.
	const textCols = 2
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			switch {
			case i < textCols && i == len(row)-1:
				b.WriteString(cell)
			case i < textCols:
				b.WriteString(cell + pad)
			default:
				b.WriteString(pad + cell)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteRatios writes one line per mode and non-baseline target, for
// example "mode simple: router/direct TPS ratio: 0.74".
func (r *Report) WriteRatios(w io.Writer) error {
	var b strings.Builder
	for _, m := range r.Modes {
		for _, t := range m.Targets[1:] {
			fmt.Fprintf(&b, "mode %s: %s/%s TPS ratio: %.2f\n", m.Mode, t.Target, r.Baseline, t.TPSRatio)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes r as indented JSON followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// nameWidth is the longest target name, to align progress lines.
func (r *Report) nameWidth() int {
	n := 0
	if len(r.Modes) > 0 {
		for _, t := range r.Modes[0].Targets {
			n = max(n, len(t.Target))
		}
	}
	return n
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

func ratio(x, base float64) float64 {
	if base == 0 {
		return 0
	}
	return x / base
}
