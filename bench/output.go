package bench

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Output is what one pgbench benchmark run printed on stdout.
type Output struct {
	// TPS is transactions per second without the initial connection time.
	TPS float64 `json:"tps"`
	// LatencyAvgMs is the mean transaction latency in milliseconds.
	LatencyAvgMs float64 `json:"latency_avg_ms"`
	// LatencyStddevMs is printed by pgbench only with -P or --rate; zero
	// otherwise.
	LatencyStddevMs float64 `json:"latency_stddev_ms,omitempty"`
	// InitialConnMs is the time pgbench took to open its connections.
	InitialConnMs float64 `json:"initial_connection_ms"`
	// Transactions is the number of transactions processed.
	Transactions int64 `json:"transactions"`
	// Failed is the number of failed transactions (serialization and
	// deadlock failures; pgbench 15 and later print it).
	Failed int64 `json:"failed"`
}

// ParseOutput reads the summary that pgbench prints on stdout at the end of
// a benchmark run (pgbench 13 to 17 formats). It needs the tps and latency
// average lines and returns an error wrapping ErrNoResult when either is
// missing; other lines are optional. A value that is not a finite,
// non-negative number is an error. It never panics on any input.
//
// It does not decide whether the run was aborted: see classify.
func ParseOutput(stdout string) (Output, error) {
	var (
		o                  Output
		haveTPS, haveLatAv bool
	)
	for line := range strings.Lines(stdout) {
		line = strings.TrimSpace(line)
		key, val, ok := strings.Cut(line, " = ")
		if !ok {
			key, val, ok = strings.Cut(line, ": ")
		}
		if !ok {
			continue
		}
		var err error
		switch key {
		case "tps":
			// pgbench >= 14: "tps = 107648.305636 (without initial
			// connection time)"; pgbench <= 13 prints an "including
			// connections establishing" line and then an "excluding"
			// one, which is the one we want.
			num, note, _ := strings.Cut(val, " ")
			if note == "(including connections establishing)" {
				continue
			}
			o.TPS, err = parseNumber(num)
			haveTPS = err == nil
		case "latency average":
			// "0.366 ms" or "0.366 ms (including failures)"
			o.LatencyAvgMs, err = parseMillis(val)
			haveLatAv = err == nil
		case "latency stddev":
			o.LatencyStddevMs, err = parseMillis(val)
		case "initial connection time":
			o.InitialConnMs, err = parseMillis(val)
		case "number of transactions actually processed":
			// "93648" with -T, "1/1" (done/planned) with -t.
			num, _, _ := strings.Cut(val, "/")
			o.Transactions, err = parseCount(num)
		case "number of failed transactions":
			// "7994 (73.111%)"
			num, _, _ := strings.Cut(val, " ")
			o.Failed, err = parseCount(num)
		default:
			continue
		}
		if err != nil {
			return Output{}, fmt.Errorf("pgbench output line %q: %w", line, err)
		}
	}
	switch {
	case !haveTPS:
		return Output{}, fmt.Errorf("%w: no tps line", ErrNoResult)
	case !haveLatAv:
		return Output{}, fmt.Errorf("%w: no latency average line", ErrNoResult)
	}
	return o, nil
}

func parseMillis(s string) (float64, error) {
	num, rest, _ := strings.Cut(s, " ")
	unit, _, _ := strings.Cut(rest, " ")
	if unit != "ms" {
		return 0, fmt.Errorf("unit %q, want ms", unit)
	}
	return parseNumber(num)
}

func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%q is not a finite non-negative number", s)
	}
	return v, nil
}

func parseCount(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fmt.Errorf("negative count %d", v)
	}
	return v, nil
}

// Lines on stderr (or, in some versions, stdout) by which pgbench reports
// aborted clients, and by which it says its tables are missing.
var (
	abortedRE        = regexp.MustCompile(`(?m)^pgbench: (error: )?(client \d+ (script \d+ )?aborted|Run was aborted)`)
	notInitializedRE = regexp.MustCompile(`relation "pgbench_[a-z]+" does not exist|Perhaps you need to do initialization`)
)

// classify turns pgbench's exit code and output into the cause of a failure,
// or nil when the invocation succeeded: ErrNotInitialized when pgbench says
// its tables are missing, ErrAborted when clients aborted (even with exit
// code 0, as pgbench before 15 did), errExit for another non-zero exit.
func classify(exitCode int, stdout, stderr string) error {
	switch {
	case notInitializedRE.MatchString(stderr):
		return ErrNotInitialized
	case abortedRE.MatchString(stderr) || abortedRE.MatchString(stdout):
		return ErrAborted
	case exitCode != 0:
		return fmt.Errorf("exit status %d", exitCode)
	}
	return nil
}

// tailLines returns up to n last non-blank lines of s, trimmed, leaving out
// the caret lines that point into a quoted query.
func tailLines(s string, n int) []string {
	var out []string
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.Trim(l, "^ ") == "" {
			continue
		}
		out = append(out, l)
	}
	slices.Reverse(out)
	return out
}
