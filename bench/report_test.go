package bench

import (
	"encoding/json"
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

// sampleReport is a report of two modes, two targets, three rounds.
func sampleReport() *Report {
	cfg := Config{Targets: []Target{{Name: "direct", DSN: "x"}, {Name: "router", DSN: "y"}}, Modes: []string{"simple", "prepared"}, Duration: 2 * time.Second}.WithDefaults()
	r := newReport(cfg, "pgbench (PostgreSQL) 15.18")
	add := func(mi, ti int, tps ...float64) {
		for i, v := range tps {
			r.Modes[mi].Targets[ti].Runs = append(r.Modes[mi].Targets[ti].Runs,
				RunResult{Round: i + 1, Output: Output{TPS: v, LatencyAvgMs: 8 / v * 1000, Transactions: int64(v * 2), Failed: int64(i)}})
		}
	}
	add(0, 0, 1000, 1200, 1100)
	add(0, 1, 800, 700, 900)
	add(1, 0, 2000, 2000, 2000)
	add(1, 1, 1500, 1000, 1600)
	r.summarize()
	return r
}

func TestReportSummary(t *testing.T) {
	r := sampleReport()
	d, rt := r.Modes[0].Targets[0], r.Modes[0].Targets[1]
	if d.TPSMedian != 1100 || rt.TPSMedian != 800 {
		t.Errorf("medians = %v, %v; want 1100, 800", d.TPSMedian, rt.TPSMedian)
	}
	if d.TPSRatio != 1 || rt.TPSRatio != 800.0/1100 {
		t.Errorf("ratios = %v, %v", d.TPSRatio, rt.TPSRatio)
	}
	if rt.LatencyMedianMs != 10 || rt.LatencyRatio != 10/(8/1100.0*1000) {
		t.Errorf("latency median %v ratio %v", rt.LatencyMedianMs, rt.LatencyRatio)
	}
	if rt.Failed != 3 {
		t.Errorf("failed = %d, want 3", rt.Failed)
	}
	if got, ok := r.Ratio("prepared", "router"); !ok || got != 0.75 {
		t.Errorf("Ratio(prepared, router) = %v, %v; want 0.75", got, ok)
	}
	if _, ok := r.Ratio("extended", "router"); ok {
		t.Errorf("Ratio of a mode not run reported ok")
	}
}

func TestReportZeroBaseline(t *testing.T) {
	cfg := Config{Targets: []Target{{Name: "a", DSN: "x"}, {Name: "b", DSN: "y"}}}.WithDefaults()
	r := newReport(cfg, "")
	r.summarize()
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("Marshal of a report without runs: %v", err)
	}
	if got := r.Modes[0].Targets[1].TPSRatio; got != 0 {
		t.Errorf("ratio to a zero baseline = %v, want 0", got)
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `MODE      TARGET  RUNS  TPS_MEDIAN  LATENCY_MS_MEDIAN  TPS_RATIO  FAILED
simple    direct     3      1100.0              7.273       1.00       3
simple    router     3       800.0             10.000       0.73       3
prepared  direct     3      2000.0              4.000       1.00       3
prepared  router     3      1500.0              5.333       0.75       3
`
	if b.String() != want {
		t.Errorf("WriteTable =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteRatios(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteRatios(&b); err != nil {
		t.Fatal(err)
	}
	want := "mode simple: router/direct TPS ratio: 0.73\nmode prepared: router/direct TPS ratio: 0.75\n"
	if b.String() != want {
		t.Errorf("WriteRatios =\n%s\nwant\n%s", b.String(), want)
	}
}

// TestReportJSON pins the JSON field names: scripts read them.
func TestReportJSON(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workload", "clients", "threads", "duration_seconds", "rounds", "pgbench_version", "baseline", "modes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q", k)
		}
	}
	mode := m["modes"].([]any)[0].(map[string]any)
	if mode["mode"] != "simple" {
		t.Errorf("modes[0].mode = %v", mode["mode"])
	}
	target := mode["targets"].([]any)[1].(map[string]any)
	for _, k := range []string{"target", "runs", "tps_median", "latency_median_ms", "tps_ratio", "latency_ratio", "failed"} {
		if _, ok := target[k]; !ok {
			t.Errorf("target JSON lacks %q", k)
		}
	}
	run := target["runs"].([]any)[0].(map[string]any)
	for _, k := range []string{"round", "tps", "latency_avg_ms", "initial_connection_ms", "transactions", "failed"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run JSON lacks %q", k)
		}
	}
	if run["tps"] != 800.0 || m["duration_seconds"] != 2.0 {
		t.Errorf("run tps = %v, duration_seconds = %v", run["tps"], m["duration_seconds"])
	}

	var back Report
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
		t.Fatal(err)
	}
	if back.Modes[1].Targets[1].Runs[2].TPS != 1600 {
		t.Errorf("round trip lost a run: %+v", back.Modes[1].Targets[1])
	}
}
