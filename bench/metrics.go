package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The router's Prometheus metrics that a run reads (see router/metrics.go).
const (
	metricSessions     = "shardline_router_client_sessions"
	metricTransactions = "shardline_router_transactions_total"
	metricReads        = "shardline_router_read_transactions_total"
	metricFallbacks    = "shardline_router_replica_fallbacks_total"
	metricWriteTokens  = "shardline_router_write_tokens_total"
	metricLoopSleeps   = "shardline_router_loop_sleeps_total"
	metricIOUring      = "shardline_router_io_uring"
	metricSchedBatch   = "shardline_router_loop_sched_batch"
)

// Sample is one line of the Prometheus text exposition format: a metric
// name, its labels and its value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParsePrometheusText parses the Prometheus text exposition format (0.0.4,
// what a /metrics endpoint serves without content negotiation): one sample
// per line, `name{label="value",...} value [timestamp]`; comment (# HELP,
// # TYPE) and blank lines are skipped. Label values may hold escaped
// quotes, backslashes and newlines, and commas and braces. A malformed
// line is an error naming it. It never panics.
func ParsePrometheusText(text string) ([]Sample, error) {
	var out []Sample
	n := 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", n, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSample(line string) (Sample, error) {
	i := 0
	for i < len(line) && isMetricNameByte(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return Sample{}, fmt.Errorf("no metric name")
	}
	s := Sample{Name: line[:i], Labels: map[string]string{}}
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		var err error
		if rest, err = parseLabels(rest[1:], s.Labels); err != nil {
			return Sample{}, err
		}
	}
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return Sample{}, fmt.Errorf("no value after the name and labels")
	}
	f := strings.Fields(rest)
	if len(f) > 2 {
		return Sample{}, fmt.Errorf("%d fields after the name and labels, want a value and an optional timestamp", len(f))
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return Sample{}, fmt.Errorf("value %q: %w", f[0], err)
	}
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			return Sample{}, fmt.Errorf("timestamp %q: %w", f[1], err)
		}
	}
	s.Value = v
	return s, nil
}

// parseLabels reads `name="value",...}` (after the opening brace) into
// labels and returns what follows the closing brace.
func parseLabels(s string, labels map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		i := 0
		for i < len(s) && isLabelNameByte(s[i], i == 0) {
			i++
		}
		if i == 0 {
			return "", fmt.Errorf("bad label name at %q", s)
		}
		name := s[:i]
		s = strings.TrimLeft(s[i:], " \t")
		if !strings.HasPrefix(s, `="`) {
			return "", fmt.Errorf("label %s: want =\"value\"", name)
		}
		s = s[2:]
		var v strings.Builder
		closed := false
		for j := 0; j < len(s); j++ {
			c := s[j]
			if c == '"' {
				s, closed = s[j+1:], true
				break
			}
			if c != '\\' {
				v.WriteByte(c)
				continue
			}
			if j+1 == len(s) {
				break
			}
			j++
			switch s[j] {
			case 'n':
				v.WriteByte('\n')
			case '\\', '"':
				v.WriteByte(s[j])
			default:
				return "", fmt.Errorf("label %s: bad escape \\%c", name, s[j])
			}
		}
		if !closed {
			return "", fmt.Errorf("label %s: unterminated value", name)
		}
		if _, dup := labels[name]; dup {
			return "", fmt.Errorf("label %s twice", name)
		}
		labels[name] = v.String()
		s = strings.TrimLeft(s, " \t")
		switch {
		case strings.HasPrefix(s, ","):
			s = s[1:]
		case strings.HasPrefix(s, "}"):
		default:
			return "", fmt.Errorf("after label %s: want ',' or '}'", name)
		}
	}
}

func isMetricNameByte(c byte, first bool) bool {
	return c == ':' || isLabelNameByte(c, first)
}

func isLabelNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// RouterCounters are the router's counters that tell where transactions
// went, summed over shards: a snapshot (ScrapeRouter) or the change over
// one run (Sub).
type RouterCounters struct {
	// Transactions are transactions (and autocommit statements) routed,
	// replicas' included: shardline_router_transactions_total.
	Transactions int64 `json:"transactions"`
	// ReplicaReads and PrimaryReads are the replica-eligible reads
	// (read-only transactions under shardline.target=replica or auto) by
	// the member that served them: shardline_router_read_transactions_total.
	ReplicaReads int64 `json:"replica_reads"`
	PrimaryReads int64 `json:"primary_reads"`
	// ReplicaFallbacks are replica-eligible reads the primary served
	// (lag, token, unhealthy, none): shardline_router_replica_fallbacks_total.
	ReplicaFallbacks int64 `json:"replica_fallbacks"`
	// WriteTokens are read-your-writes tokens taken after write
	// transactions: shardline_router_write_tokens_total.
	WriteTokens int64 `json:"write_tokens"`
	// LoopSleeps are the event loop's waits for news with nothing to
	// run, each a possible sleep and wake-up: shardline_router_loop_sleeps_total.
	LoopSleeps int64 `json:"loop_sleeps"`
}

// RouterCountersFrom sums the router's counters in samples. A counter
// that is absent is 0 (a labelled counter has no sample before its first
// increment); samples without the router's always-present session gauge
// are an error: they are not the router's.
func RouterCountersFrom(samples []Sample) (RouterCounters, error) {
	var (
		c     RouterCounters
		found bool
	)
	add := func(dst *int64, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1<<53 {
			return fmt.Errorf("counter value %v", v)
		}
		*dst += int64(v)
		return nil
	}
	for _, s := range samples {
		var err error
		switch s.Name {
		case metricSessions:
			found = true
		case metricTransactions:
			err = add(&c.Transactions, s.Value)
		case metricReads:
			switch s.Labels["target"] {
			case "replica":
				err = add(&c.ReplicaReads, s.Value)
			case "primary":
				err = add(&c.PrimaryReads, s.Value)
			}
		case metricFallbacks:
			err = add(&c.ReplicaFallbacks, s.Value)
		case metricWriteTokens:
			err = add(&c.WriteTokens, s.Value)
		case metricLoopSleeps:
			err = add(&c.LoopSleeps, s.Value)
		}
		if err != nil {
			return RouterCounters{}, fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	if !found {
		return RouterCounters{}, fmt.Errorf("no %s metric: not the router's metrics", metricSessions)
	}
	return c, nil
}

// Sub returns c - before: the change over a run.
func (c RouterCounters) Sub(before RouterCounters) RouterCounters {
	return RouterCounters{
		Transactions:     c.Transactions - before.Transactions,
		ReplicaReads:     c.ReplicaReads - before.ReplicaReads,
		PrimaryReads:     c.PrimaryReads - before.PrimaryReads,
		ReplicaFallbacks: c.ReplicaFallbacks - before.ReplicaFallbacks,
		WriteTokens:      c.WriteTokens - before.WriteTokens,
		LoopSleeps:       c.LoopSleeps - before.LoopSleeps,
	}
}

// ReplicaShare is the share of the routed transactions that a replica
// served, or nil without transactions.
func (c RouterCounters) ReplicaShare() *float64 { return c.perTxn(c.ReplicaReads) }

// WriteTokensPerTxn is write tokens per routed transaction, or nil without
// transactions.
func (c RouterCounters) WriteTokensPerTxn() *float64 { return c.perTxn(c.WriteTokens) }

// LoopSleepsPerTxn is the event loop's waits for news per routed
// transaction, or nil without transactions.
func (c RouterCounters) LoopSleepsPerTxn() *float64 { return c.perTxn(c.LoopSleeps) }

// perTxn is n per routed transaction, or nil without transactions.
func (c RouterCounters) perTxn(n int64) *float64 {
	if c.Transactions <= 0 {
		return nil
	}
	return ptr(float64(n) / float64(c.Transactions))
}

// metricsTimeout bounds one scrape.
const metricsTimeout = 10 * time.Second

// ScrapeRouter reads the router's counters from its Prometheus endpoint
// (GET url).
func ScrapeRouter(ctx context.Context, url string) (RouterCounters, error) {
	samples, err := scrape(ctx, url)
	if err != nil {
		return RouterCounters{}, err
	}
	c, err := RouterCountersFrom(samples)
	if err != nil {
		return RouterCounters{}, fmt.Errorf("router metrics GET %s: %w", url, err)
	}
	return c, nil
}

// ScrapeLoopMode reads how the router's event loop runs from its
// Prometheus endpoint (GET url); see LoopModeFrom.
func ScrapeLoopMode(ctx context.Context, url string) (string, error) {
	samples, err := scrape(ctx, url)
	if err != nil {
		return "", err
	}
	return LoopModeFrom(samples), nil
}

// LoopModeFrom describes the router's event loop from its gauges
// (shardline_router_io_uring, shardline_router_loop_sched_batch): "io_uring,
// SCHED_BATCH", "epoll, default scheduling policy" and so on, "unknown" for
// a gauge a router too old to have it does not report.
func LoopModeFrom(samples []Sample) string {
	ioMode, sched := "I/O unknown", "scheduling policy unknown"
	for _, s := range samples {
		switch s.Name {
		case metricIOUring:
			ioMode = "epoll"
			if s.Value == 1 {
				ioMode = "io_uring"
			}
		case metricSchedBatch:
			sched = "default scheduling policy"
			if s.Value == 1 {
				sched = "SCHED_BATCH"
			}
		}
	}
	return ioMode + ", " + sched
}

// scrape GETs url and parses the Prometheus text it serves.
func scrape(ctx context.Context, url string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("router metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("router metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("router metrics GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("router metrics GET %s: %s", url, resp.Status)
	}
	samples, err := ParsePrometheusText(string(body))
	if err != nil {
		return nil, fmt.Errorf("router metrics GET %s: %w", url, err)
	}
	return samples, nil
}
