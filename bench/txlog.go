package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ParseTxLog reads a pgbench per-transaction log (pgbench -l, without
// --aggregate-interval) and appends the latency of each completed
// transaction, in microseconds, to dst. Each line is
//
//	client_id transaction_no time script_no time_epoch time_us [schedule_lag [retries]]
//
// where time is the latency in microseconds, or "skipped" or "failed" for
// transactions that did not complete; those are left out. A line that does
// not have this shape is an error naming its number. It never panics.
func ParseTxLog(r io.Reader, dst []int64) ([]int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 || len(f) > 8 {
			return dst, fmt.Errorf("pgbench log line %d: %d fields, want 6 to 8", n, len(f))
		}
		for _, i := range []int{0, 1, 3, 4, 5} {
			if _, err := strconv.ParseUint(f[i], 10, 64); err != nil {
				return dst, fmt.Errorf("pgbench log line %d: field %d %q is not a count", n, i+1, f[i])
			}
		}
		switch f[2] {
		case "skipped", "failed":
			continue
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || us < 0 {
			return dst, fmt.Errorf("pgbench log line %d: latency %q is not a number of microseconds", n, f[2])
		}
		dst = append(dst, us)
	}
	if err := sc.Err(); err != nil {
		return dst, fmt.Errorf("pgbench log: %w", err)
	}
	return dst, nil
}

// readTxLogs reads every log file pgbench wrote with --log-prefix prefix
// (prefix.PID for its first thread, prefix.PID.N for thread N).
func readTxLogs(prefix string) ([]int64, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("pgbench wrote no transaction log at %s.*", prefix)
	}
	var lat []int64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		lat, err = ParseTxLog(bufio.NewReaderSize(f, 1<<20), lat)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(name), err)
		}
	}
	return lat, nil
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted, by the
// nearest-rank method: the smallest value such that at least p percent of
// the values are at or below it. It returns 0 for no values.
func Percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 || p <= 0 || math.IsNaN(p) {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// latencyStats are the percentiles a run reports, in milliseconds.
type latencyStats struct {
	p50, p99 float64
	n        int
}

// summarizeLatencies sorts lat in place and returns its p50 and p99.
func summarizeLatencies(lat []int64) latencyStats {
	slices.Sort(lat)
	return latencyStats{
		p50: float64(Percentile(lat, 50)) / 1000,
		p99: float64(Percentile(lat, 99)) / 1000,
		n:   len(lat),
	}
}
