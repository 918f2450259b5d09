package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A pgbench 15 per-transaction log of -S (captured), with a skipped and a
// failed transaction and a --max-tries line added.
const txLog = `0 1 1094 0 1795631322 615980
0 2 2756 0 1795631322 618746
1 1 199 0 1795631322 618952
1 2 skipped 0 1795631322 618960 12
2 1 failed 0 1795631322 618970
2 2 51 0 1795631322 619000 0 1

`

func TestParseTxLog(t *testing.T) {
	got, err := ParseTxLog(strings.NewReader(txLog), []int64{7})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{7, 1094, 2756, 199, 51}; !slices.Equal(got, want) {
		t.Errorf("ParseTxLog = %v, want %v", got, want)
	}
}

func TestParseTxLogBad(t *testing.T) {
	for _, in := range []string{
		"0 1 12 0 1795631322\n",               // 5 fields
		"0 1 12 0 1795631322 1 2 3 4\n",       // 9 fields
		"x 1 12 0 1795631322 615980\n",        // client id
		"0 1 -5 0 1795631322 615980\n",        // negative latency
		"0 1 12ms 0 1795631322 615980\n",      // unit
		"0 1 12 0 1795631322 615980\n0 1 1\n", // second line short
	} {
		if got, err := ParseTxLog(strings.NewReader(in), nil); err == nil {
			t.Errorf("ParseTxLog(%q) = %v, want an error", in, got)
		} else if !strings.Contains(err.Error(), "line") {
			t.Errorf("error %q does not name the line", err)
		}
	}
}

func TestReadTxLogs(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "tx")
	if _, err := readTxLogs(prefix); err == nil {
		t.Error("readTxLogs without files: want an error")
	}
	// pgbench's first thread writes prefix.PID, the others prefix.PID.N.
	os.WriteFile(prefix+".123", []byte("0 1 10 0 1 1\n"), 0o644)
	os.WriteFile(prefix+".123.1", []byte("1 1 20 0 1 1\n1 2 30 0 1 2\n"), 0o644)
	got, err := readTxLogs(prefix)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []int64{10, 20, 30}) {
		t.Errorf("readTxLogs = %v, %v", got, err)
	}
	os.WriteFile(prefix+".123.2", []byte("garbage\n"), 0o644)
	if _, err := readTxLogs(prefix); err == nil || !strings.Contains(err.Error(), "tx.123.2") {
		t.Errorf("readTxLogs with a bad file = %v, want an error naming it", err)
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1)
	}
	tests := []struct {
		in   []int64
		p    float64
		want int64
	}{
		{nil, 50, 0},
		{[]int64{5}, 50, 5},
		{[]int64{5}, 99, 5},
		{[]int64{1, 2}, 50, 1},
		{[]int64{1, 2, 3}, 50, 2},
		{[]int64{1, 2, 3, 4}, 50, 2},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 99.5, 100},
		{hundred, 100, 100},
		{hundred, 0.5, 1},
		{hundred, 0, 0},
	}
	for _, tt := range tests {
		if got := Percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("Percentile(%d values, %v) = %d, want %d", len(tt.in), tt.p, got, tt.want)
		}
	}
	// 1000 values 1..1000 shuffled: p50 500, p99 990.
	var lat []int64
	for i := range 1000 {
		lat = append(lat, int64((i*7919)%1000+1))
	}
	s := summarizeLatencies(lat)
	if s.p50 != 0.5 || s.p99 != 0.99 || s.n != 1000 {
		t.Errorf("summarizeLatencies = %+v, want p50 0.5 ms, p99 0.99 ms", s)
	}
}

func FuzzParseTxLog(f *testing.F) {
	f.Add(txLog)
	f.Add("0 1 1 0 1 1 2 3\n\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		lat, err := ParseTxLog(strings.NewReader(s), nil)
		if err != nil {
			return
		}
		for _, v := range lat {
			if v < 0 {
				t.Fatalf("ParseTxLog(%q) accepted %d", s, v)
			}
		}
	})
}
