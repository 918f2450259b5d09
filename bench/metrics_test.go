package bench

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// routerMetrics is a shortened /metrics page of the router, as promhttp
// serves it: a replica read and a fallback on s1, a read on s2's primary,
// two write tokens, the event loop's waits.
const routerMetrics = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# HELP shardline_router_client_sessions Client sessions open now.
# TYPE shardline_router_client_sessions gauge
shardline_router_client_sessions 8
# HELP shardline_router_read_transactions_total Read-only transactions (and autocommit reads) that could use a replica, by shard and the target that served them.
# TYPE shardline_router_read_transactions_total counter
shardline_router_read_transactions_total{shard="s1",target="primary"} 3
shardline_router_read_transactions_total{shard="s1",target="replica"} 12345
shardline_router_read_transactions_total{shard="s2",target="primary"} 5
# HELP shardline_router_replica_fallbacks_total Replica-eligible reads served by the primary, by reason (lag, token, unhealthy, none).
# TYPE shardline_router_replica_fallbacks_total counter
shardline_router_replica_fallbacks_total{reason="lag",shard="s1"} 3
shardline_router_replica_fallbacks_total{reason="none",shard="s2"} 5
# HELP shardline_router_transactions_total Transactions (and autocommit statements) routed, by shard.
# TYPE shardline_router_transactions_total counter
shardline_router_transactions_total{shard="s1"} 20000
shardline_router_transactions_total{shard="s2"} 10
# HELP shardline_router_write_tokens_total Read-your-writes tokens taken after write transactions (one server round trip each).
# TYPE shardline_router_write_tokens_total counter
shardline_router_write_tokens_total 2
# HELP shardline_router_loop_sleeps_total Waits of the event loop in the kernel for news when it had nothing to run (one that sleeps costs a wake-up).
# TYPE shardline_router_loop_sleeps_total counter
shardline_router_loop_sleeps_total 5010
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.23e+01
`

func TestParsePrometheusText(t *testing.T) {
	samples, err := ParsePrometheusText(routerMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 12 {
		t.Fatalf("%d samples, want 12: %+v", len(samples), samples)
	}
	s := samples[3]
	if s.Name != "shardline_router_read_transactions_total" || s.Labels["shard"] != "s1" || s.Labels["target"] != "replica" || s.Value != 12345 {
		t.Errorf("sample 3 = %+v", s)
	}
	if s := samples[11]; s.Name != "process_cpu_seconds_total" || s.Value != 12.3 || len(s.Labels) != 0 {
		t.Errorf("last sample = %+v", s)
	}

	// Escapes and separators inside label values, spacing, a trailing
	// comma, a timestamp, special values.
	samples, err = ParsePrometheusText("m{a=\"x\\\"y,}\\\\z\\n\" , b=\"\",} 1.5 1700000000000\r\nn:sub_2 NaN\n  o +Inf\np{} -1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 4 || samples[0].Labels["a"] != "x\"y,}\\z\n" || samples[0].Labels["b"] != "" || samples[0].Value != 1.5 ||
		samples[1].Name != "n:sub_2" || samples[1].Value == samples[1].Value || samples[2].Name != "o" || samples[3].Value != -1 {
		t.Errorf("samples = %+v", samples)
	}

	for _, bad := range []string{
		"m",
		"m{a=\"b\"}",
		"m{a=\"b\"}1",
		"m{a=b} 1",
		"m{a=\"b} 1",
		"m{a=\"b\\",
		"m{a=\"b\\q\"} 1",
		"m{a=\"b\" c=\"d\"} 1",
		"m{a=\"1\",a=\"2\"} 1",
		"m{1a=\"b\"} 1",
		"m 1 2 3",
		"m one",
		"m 1 soon",
		"9m 1",
		"{a=\"b\"} 1",
	} {
		if _, err := ParsePrometheusText("ok 1\n" + bad + "\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("ParsePrometheusText(%q) = %v, want an error about line 2", bad, err)
		}
	}
}

func TestRouterCounters(t *testing.T) {
	samples, err := ParsePrometheusText(routerMetrics)
	if err != nil {
		t.Fatal(err)
	}
	c, err := RouterCountersFrom(samples)
	if err != nil {
		t.Fatal(err)
	}
	want := RouterCounters{Transactions: 20010, ReplicaReads: 12345, PrimaryReads: 8, ReplicaFallbacks: 8, WriteTokens: 2, LoopSleeps: 5010}
	if c != want {
		t.Errorf("RouterCountersFrom = %+v, want %+v", c, want)
	}
	d := c.Sub(RouterCounters{Transactions: 10, ReplicaReads: 345, PrimaryReads: 8, ReplicaFallbacks: 8, WriteTokens: 2, LoopSleeps: 10})
	if d != (RouterCounters{Transactions: 20000, ReplicaReads: 12000, LoopSleeps: 5000}) {
		t.Errorf("Sub = %+v", d)
	}
	if got := *d.ReplicaShare(); got != 0.6 {
		t.Errorf("ReplicaShare = %v, want 0.6", got)
	}
	if got := *d.WriteTokensPerTxn(); got != 0 {
		t.Errorf("WriteTokensPerTxn = %v, want 0", got)
	}
	if got := *d.LoopSleepsPerTxn(); got != 0.25 {
		t.Errorf("LoopSleepsPerTxn = %v, want 0.25", got)
	}
	if (RouterCounters{}).ReplicaShare() != nil || (RouterCounters{}).WriteTokensPerTxn() != nil || (RouterCounters{}).LoopSleepsPerTxn() != nil {
		t.Error("shares without transactions are not nil")
	}

	// Before the first read the labelled counters have no samples: 0.
	samples, _ = ParsePrometheusText("shardline_router_client_sessions 0\nshardline_router_write_tokens_total 0\n")
	if c, err := RouterCountersFrom(samples); err != nil || c != (RouterCounters{}) {
		t.Errorf("RouterCountersFrom(fresh router) = %+v, %v", c, err)
	}
	// Another program's metrics.
	samples, _ = ParsePrometheusText("go_goroutines 3\n")
	if _, err := RouterCountersFrom(samples); err == nil || !strings.Contains(err.Error(), "not the router") {
		t.Errorf("RouterCountersFrom(other metrics) = %v", err)
	}
	samples, _ = ParsePrometheusText("shardline_router_client_sessions 0\nshardline_router_transactions_total{shard=\"s1\"} -1\n")
	if _, err := RouterCountersFrom(samples); err == nil {
		t.Error("a negative counter was accepted")
	}
}

func TestScrapeRouter(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(routerMetrics))
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("m{\n")) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := ScrapeRouter(t.Context(), srv.URL+"/metrics")
	if err != nil || c.ReplicaReads != 12345 || c.WriteTokens != 2 {
		t.Errorf("ScrapeRouter = %+v, %v", c, err)
	}
	if _, err := ScrapeRouter(t.Context(), srv.URL+"/nothing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("ScrapeRouter(404) = %v", err)
	}
	if _, err := ScrapeRouter(t.Context(), srv.URL+"/broken"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ScrapeRouter(bad text) = %v", err)
	}
}

// FuzzParsePrometheusText checks what ParsePrometheusText promises:
//   - a sample line built from a metric name, labels (values with quotes,
//     backslashes, newlines, commas and braces, escaped as the format
//     says), a value and an optional timestamp, among the router's
//     metrics, is found again in its place with that name, those labels and
//     that value;
//   - of any text it accepts, there is a sample for every line that is
//     neither blank nor a comment, in order, each named as its line begins,
//     each label written in its line as name="escaped value"; and
//     RouterCountersFrom, when it accepts the samples, has no negative
//     counter;
//   - of any text it rejects, the error names the first line that is not
//     a sample (its number and text), and the lines before it parse.
func FuzzParsePrometheusText(f *testing.F) {
	f.Add(routerMetrics, "shardline_router_transactions_total", "shard", "s1", "x", "", 20000.0, int64(0))
	f.Add("m{a=\"x\\\"y\"} 1 2\n", "m", "a", "x\"y", "b", "1,2}", 1.5, int64(1700000000000))
	f.Add("m{a=\"\\", "n:sub_2", "le", "+Inf", "quantile", "a\\b\nc", math.Inf(1), int64(-1))
	f.Add("# HELP m x\n# TYPE m counter\nm 1\n\nm{} 2 3\n", "_", "_", "", "__name__", "{}", math.NaN(), int64(5))
	f.Add("ok 1\nm{a=\"b\" c=\"d\"} 1\n", "9m", "1a", "v", "1a", "w", -0.0, int64(0))
	f.Fuzz(func(t *testing.T, text, name, label1, value1, label2, value2 string, value float64, ts int64) {
		checkPrometheusText(t, text)

		// A sample line from known parts, among others.
		name = sanitizeName(name, isMetricNameByte)
		l1, l2 := sanitizeName(label1, isLabelNameByte), sanitizeName(label2, isLabelNameByte)
		labels := map[string]string{l1: value1}
		if l2 != l1 {
			labels[l2] = value2
		}
		var b strings.Builder
		b.WriteString(name)
		if len(labels) > 0 {
			b.WriteString("{")
			for _, k := range slices.Sorted(maps.Keys(labels)) {
				fmt.Fprintf(&b, "%s=\"%s\",", k, escapeLabel(labels[k]))
			}
			b.WriteString("}")
		}
		b.WriteString(" " + strconv.FormatFloat(value, 'g', -1, 64))
		if ts != 0 {
			fmt.Fprintf(&b, " %d", ts)
		}
		page := routerMetrics + b.String() + "\n# EOF\nlast 1\n"
		samples, err := ParsePrometheusText(page)
		if err != nil {
			t.Fatalf("ParsePrometheusText(built line %q): %v", b.String(), err)
		}
		if len(samples) != 14 {
			t.Fatalf("built line %q: %d samples, want 14", b.String(), len(samples))
		}
		got := samples[12]
		if got.Name != name || !maps.Equal(got.Labels, labels) || !(got.Value == value || math.IsNaN(got.Value) && math.IsNaN(value)) {
			t.Fatalf("built line %q: sample %+v, want name %q, labels %q, value %v", b.String(), got, name, labels, value)
		}
	})
}

// sanitizeName makes s a metric or label name: bytes that may not be in
// it become '_', and an empty name is "m".
func sanitizeName(s string, ok func(c byte, first bool) bool) string {
	b := []byte(s)
	for i, c := range b {
		if !ok(c, i == 0) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "m"
	}
	return string(b)
}

// escapeLabel escapes a label value as the text format does.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// labelWritten reports whether line holds label name with value v as the
// text format writes it: name, spaces or tabs, then ="v escaped".
func labelWritten(line, name, v string) bool {
	want := `="` + escapeLabel(v) + `"`
	for i := strings.Index(line, name); i >= 0; {
		if strings.HasPrefix(strings.TrimLeft(line[i+len(name):], " \t"), want) {
			return true
		}
		j := strings.Index(line[i+1:], name)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// checkPrometheusText checks what ParsePrometheusText promises of any
// text.
func checkPrometheusText(t *testing.T, text string) {
	samples, err := ParsePrometheusText(text)
	var lines []string // the sample lines, trimmed
	n, bad := 0, 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if bad == 0 && err != nil && strings.HasPrefix(err.Error(), fmt.Sprintf("metrics line %d %q: ", n, line)) {
			bad = n
		}
		if bad == 0 {
			lines = append(lines, line)
		}
	}
	if err != nil {
		if bad == 0 {
			t.Fatalf("ParsePrometheusText(%q): error %q names no sample line", text, err)
		}
		if _, err := ParsePrometheusText(strings.Join(lines, "\n")); err != nil {
			t.Fatalf("ParsePrometheusText(%q): the lines before line %d do not parse alone: %v", text, bad, err)
		}
		return
	}
	if len(samples) != len(lines) {
		t.Fatalf("ParsePrometheusText(%q): %d samples of %d sample lines", text, len(samples), len(lines))
	}
	for i, s := range samples {
		rest, ok := strings.CutPrefix(lines[i], s.Name)
		if !ok || s.Name == "" || rest == "" || !strings.ContainsRune("{ \t", rune(rest[0])) {
			t.Fatalf("ParsePrometheusText(%q): sample %d is named %q, line %q", text, i, s.Name, lines[i])
		}
		for k, v := range s.Labels {
			if k == "" || !labelWritten(lines[i], k, v) {
				t.Fatalf("ParsePrometheusText(%q): sample %d has label %s=%q, not in its line %q", text, i, k, v, lines[i])
			}
		}
	}
	c, err := RouterCountersFrom(samples)
	if err == nil && (c.Transactions < 0 || c.ReplicaReads < 0 || c.PrimaryReads < 0 || c.ReplicaFallbacks < 0 || c.WriteTokens < 0 || c.LoopSleeps < 0) {
		t.Fatalf("RouterCountersFrom(%q) = %+v: a negative counter", text, c)
	}
}

// LoopModeFrom names the loop's I/O and scheduling policy from the
// router's gauges, and says "unknown" for a gauge that is absent.
func TestLoopModeFrom(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{"shardline_router_io_uring 1\nshardline_router_loop_sched_batch 1\n", "io_uring, SCHED_BATCH"},
		{"shardline_router_io_uring 0\nshardline_router_loop_sched_batch 0\n", "epoll, default scheduling policy"},
		{"shardline_router_io_uring 1\n", "io_uring, scheduling policy unknown"},
		{"shardline_router_client_sessions 0\n", "I/O unknown, scheduling policy unknown"},
	} {
		samples, err := ParsePrometheusText(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if got := LoopModeFrom(samples); got != tc.want {
			t.Errorf("LoopModeFrom(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}
