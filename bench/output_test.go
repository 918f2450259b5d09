package bench

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sample is one captured pgbench invocation under testdata/pgbench15.
type sample struct {
	stdout, stderr string
	rc             int
}

func readSample(t testing.TB, name string) sample {
	t.Helper()
	read := func(ext string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "pgbench15", name+ext))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	rc, err := strconv.Atoi(strings.TrimSpace(read(".rc")))
	if err != nil {
		t.Fatal(err)
	}
	return sample{stdout: read(".stdout"), stderr: read(".stderr"), rc: rc}
}

func TestParseOutputSamples(t *testing.T) {
	tests := []struct {
		name string
		want Output
	}{
		{"select-simple", Output{TPS: 107648.305636, LatencyAvgMs: 0.019, InitialConnMs: 3.472, Transactions: 107568}},
		{"select-extended", Output{TPS: 93906.053836, LatencyAvgMs: 0.021, InitialConnMs: 2.954, Transactions: 93648}},
		{"select-prepared", Output{TPS: 164306.651364, LatencyAvgMs: 0.012, InitialConnMs: 2.664, Transactions: 164352}},
		{"write-prepared", Output{TPS: 3392.760042, LatencyAvgMs: 0.589, InitialConnMs: 2.985, Transactions: 3388}},
		{"progress", Output{TPS: 159278.419591, LatencyAvgMs: 0.012, LatencyStddevMs: 0.006, InitialConnMs: 2.961, Transactions: 318539}},
		{"check", Output{TPS: 931.098696, LatencyAvgMs: 1.074, InitialConnMs: 2.395, Transactions: 1}},
		{"failures", Output{TPS: 2940.232278, LatencyAvgMs: 0.366, InitialConnMs: 4.724, Transactions: 2940, Failed: 7994}},
		// Aborted runs still print figures; classify rejects them.
		{"aborted", Output{TPS: 100635.978692, LatencyAvgMs: 0.020, InitialConnMs: 3.763, Transactions: 104263}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOutput(readSample(t, tt.name).stdout)
			if err != nil {
				t.Fatalf("ParseOutput: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseOutput =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestParseOutputNoResult(t *testing.T) {
	for _, name := range []string{"init", "abort-notables", "connrefused"} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseOutput(readSample(t, name).stdout)
			if !errors.Is(err, ErrNoResult) {
				t.Errorf("ParseOutput error = %v, want ErrNoResult", err)
			}
		})
	}
}

func TestParseOutputOtherVersions(t *testing.T) {
	// pgbench 13 prints two tps lines and no failures line (format from
	// its documentation).
	const pg13 = `transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 10
number of threads: 1
duration: 10 s
number of transactions actually processed: 10000/10000
latency average = 15.844 ms
latency stddev = 2.715 ms
tps = 618.764555 (including connections establishing)
tps = 622.977698 (excluding connections establishing)
`
	got, err := ParseOutput(pg13)
	if err != nil {
		t.Fatal(err)
	}
	want := Output{TPS: 622.977698, LatencyAvgMs: 15.844, LatencyStddevMs: 2.715, Transactions: 10000}
	if got != want {
		t.Errorf("ParseOutput = %+v, want %+v", got, want)
	}
}

func TestParseOutputBadValues(t *testing.T) {
	for _, in := range []string{
		"tps = abc (without initial connection time)\nlatency average = 1 ms\n",
		"tps = NaN (without initial connection time)\nlatency average = 1 ms\n",
		"tps = -5 (without initial connection time)\nlatency average = 1 ms\n",
		"tps = 5 (without initial connection time)\nlatency average = 1 s\n",
		"tps = 5 (without initial connection time)\nlatency average = +Inf ms\n",
		"tps = 5\nlatency average = 1 ms\nnumber of failed transactions: -1 (0%)\n",
		"tps = 5\n",
		"latency average = 1 ms\n",
		"",
	} {
		if o, err := ParseOutput(in); err == nil {
			t.Errorf("ParseOutput(%q) = %+v, want an error", in, o)
		}
	}
}

func TestClassifySamples(t *testing.T) {
	tests := []struct {
		name string
		want error // nil, a sentinel, or errExitStatus for a plain exit code
	}{
		{"select-simple", nil},
		{"failures", nil},
		{"check", nil},
		{"init", nil},
		{"aborted", ErrAborted},
		{"abort-notables", ErrNotInitialized},
		{"connrefused", errExitStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := readSample(t, tt.name)
			got := classify(s.rc, s.stdout, s.stderr)
			switch {
			case tt.want == nil && got != nil:
				t.Errorf("classify = %v, want nil", got)
			case tt.want == errExitStatus:
				if got == nil || !strings.Contains(got.Error(), "exit status") {
					t.Errorf("classify = %v, want an exit status error", got)
				}
			case tt.want != nil && !errors.Is(got, tt.want):
				t.Errorf("classify = %v, want %v", got, tt.want)
			}
		})
	}
	// pgbench before 15 exited 0 after aborted clients.
	if err := classify(0, "", "pgbench: error: client 3 aborted in command 1 of script 0; ERROR:  x\n"); !errors.Is(err, ErrAborted) {
		t.Errorf("classify of an aborted client with exit 0 = %v, want ErrAborted", err)
	}
	// A script named like the word is not an abort.
	if err := classify(0, "transaction type: /tmp/aborted.sql\n", ""); err != nil {
		t.Errorf("classify = %v, want nil", err)
	}
}

var errExitStatus = errors.New("exit status")

func TestTailLines(t *testing.T) {
	s := readSample(t, "abort-notables")
	got := tailLines(s.stderr, 5)
	want := []string{
		`pgbench: error: could not count number of branches: ERROR:  relation "pgbench_branches" does not exist`,
		`LINE 1: select count(*) from pgbench_branches`,
		`pgbench: hint: Perhaps you need to do initialization ("pgbench -i") in database "empty".`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tailLines =\n%q\nwant\n%q", got, want)
	}
	if got := tailLines("a\nb\nc\n", 2); strings.Join(got, ",") != "b,c" {
		t.Errorf("tailLines(a b c, 2) = %q", got)
	}
}

func FuzzParseOutput(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("testdata", "pgbench15", "*.stdout"))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("tps = 1e309 (x)\nlatency average = 0x1p-2 ms\n")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOutput(s)
		if err != nil {
			return
		}
		for _, v := range []float64{o.TPS, o.LatencyAvgMs, o.LatencyStddevMs, o.InitialConnMs} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("ParseOutput(%q) accepted %v", s, v)
			}
		}
		if o.Transactions < 0 || o.Failed < 0 {
			t.Fatalf("ParseOutput(%q) accepted a negative count: %+v", s, o)
		}
		// Whatever the stderr, classify must not panic either.
		_ = classify(0, s, s)
		_ = tailLines(s, 5)
	})
}
