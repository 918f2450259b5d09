package bench

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may set.
	stat := "4242 (pg bouncer) (x)) S 1 4242 4242 0 -1 4194560 1190 0 0 0 1234 567 0 0 20 0 1 0 12345 2048000 900 18446744073709551615\n"
	s, err := ParseProcStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if s.Comm != "pg bouncer) (x)" || s.State != "S" || s.UTime != 1234 || s.STime != 567 {
		t.Errorf("ParseProcStat = %+v", s)
	}
	if s.CPU() != 18010*time.Millisecond {
		t.Errorf("CPU = %v, want 18.01s", s.CPU())
	}
	for _, bad := range []string{
		"",
		"4242 pgbouncer S 1",
		"4242 (pgbouncer) S 1 2 3",
		"4242 (pgbouncer) S 1 4242 4242 0 -1 4194560 1190 0 0 0 x 567 0",
		"4242 (pgbouncer) S 1 4242 4242 0 -1 4194560 1190 0 0 0 12 -5 0",
		")(",
	} {
		if s, err := ParseProcStat([]byte(bad)); err == nil {
			t.Errorf("ParseProcStat(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tpgbouncer\nVmPeak:\t   20000 kB\nVmRSS:\t    8192 kB\nThreads:\t1\n"
	if kib, err := ParseVmRSS([]byte(status)); err != nil || kib != 8192 {
		t.Errorf("ParseVmRSS = %d, %v; want 8192", kib, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t8192 MB\n", "VmRSS:\tx kB\n", "VmRSS:\n"} {
		if kib, err := ParseVmRSS([]byte(bad)); err == nil {
			t.Errorf("ParseVmRSS(%q) = %d, want an error", bad, kib)
		}
	}
}

func TestReadProcSelfAndGone(t *testing.T) {
	s, err := ReadProcStat(os.Getpid())
	if err != nil || s.State == "" {
		t.Fatalf("ReadProcStat(self) = %+v, %v", s, err)
	}
	if kib, err := ReadRSS(os.Getpid()); err != nil || kib <= 0 {
		t.Errorf("ReadRSS(self) = %d, %v", kib, err)
	}
	// A child that exited and was reaped is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	if _, err := ReadProcStat(pid); !errors.Is(err, ErrProcessGone) {
		t.Errorf("ReadProcStat(exited child) = %v, want ErrProcessGone", err)
	}
	if _, err := ReadRSS(pid); !errors.Is(err, ErrProcessGone) {
		t.Errorf("ReadRSS(exited child) = %v, want ErrProcessGone", err)
	}
}

func TestParseMachineCPU(t *testing.T) {
	stat := "cpu  17538 7 8575 70290 2692 3 393 11 5 0\ncpu0 8000 0 4000 35000 1000 0 200 0 0 0\nintr 1\n"
	m, err := ParseMachineCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (MachineCPU{Busy: 17538 + 7 + 8575 + 3 + 393 + 11, Idle: 70290 + 2692}); m != want {
		t.Errorf("ParseMachineCPU = %+v, want %+v", m, want)
	}
	later := MachineCPU{Busy: m.Busy + 150, Idle: m.Idle + 50}
	busy, idle := later.Since(m)
	if busy != 1500*time.Millisecond || idle != 0.25 {
		t.Errorf("Since = %v, %v; want 1.5s, 0.25", busy, idle)
	}
	if busy, idle := m.Since(later); busy != 0 || idle != 0 {
		t.Errorf("Since(a later sample) = %v, %v; want zeros", busy, idle)
	}
	for _, bad := range []string{
		"",
		"cpu0 1 2 3 4 5 6 7 8\n",
		"cpu 1 2 3 4 5 6 7\n",
		"cpu 1 2 3 -4 5 6 7 8\n",
		"intr 1\ncpu 1 2 3 4 5 6 7 8\n",
	} {
		if m, err := ParseMachineCPU([]byte(bad)); err == nil {
			t.Errorf("ParseMachineCPU(%q) = %+v, want an error", bad, m)
		}
	}
}

// TestReadMachineCPU checks the machine's busy time against this
// process's own: the machine's includes it.
func TestReadMachineCPU(t *testing.T) {
	before, err := ReadMachineCPU()
	if err != nil {
		t.Skip(err)
	}
	self0, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var self ProcStat
	for x := 0; ; x++ {
		if x%1000000 == 0 {
			if self, err = ReadProcStat(os.Getpid()); err != nil {
				t.Fatal(err)
			}
			if self.CPU()-self0.CPU() >= 100*time.Millisecond {
				break
			}
		}
	}
	after, err := ReadMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	busy, idle := after.Since(before)
	// Ticks are sampled per CPU, so allow two of them.
	if own := self.CPU() - self0.CPU(); busy < own-20*time.Millisecond {
		t.Errorf("machine busy %v while this process alone used %v", busy, own)
	}
	if idle < 0 || idle >= 1 {
		t.Errorf("idle share %v, want within [0, 1)", idle)
	}
}

// procStates are the states /proc/PID/stat shows (field 3).
const procStates = "RSDZTtXxKWPI"

// FuzzParseProcStat checks what the /proc parsers promise, on lines built
// from known values and on any text:
//   - ParseProcStat reads back the comm (spaces, parentheses and all, as a
//     process may set it), state, utime and stime of a line built from
//     them; of any text it accepts, Comm is what lies between the first '('
//     and the last ')', State is the first field after them, UTime and
//     STime are the decimal 12th and 13th, and CPU() is their sum in clock
//     ticks, not negative.
//   - ParseVmRSS reads back the KiB of a status file built with them; of
//     any text it accepts, the KiB are the first VmRSS line's, in kB, not
//     negative.
//   - ParseMachineCPU reads back the sums of a cpu line built from known
//     fields, or fails when they do not fit; of any text it accepts, the
//     first line is the cpu line whose fields sum to Busy and Idle.
func FuzzParseProcStat(f *testing.F) {
	f.Add("1 (init) S 0 1 1 0 -1 4194560 1190 0 0 0 12 34 0 0 20 0 1 0 5 2048000 900", "init", uint64(12), uint64(34))
	f.Add("1 ()) R", ")", uint64(0), uint64(0))
	f.Add("4242 (pg bouncer) (x)) S 1 4242 4242 0 -1 4194560 1190 0 0 0 1234 567 0 0 20 0 1 0 12345 2048000 900 18446744073709551615\n",
		"pg bouncer) (x", uint64(1234), uint64(567))
	f.Add("Name:\tpgbouncer\nVmPeak:\t   20000 kB\nVmRSS:\t    8192 kB\nThreads:\t1\n", "(sd-pam)", uint64(1)<<30, uint64(7))
	f.Add("cpu  17538 7 8575 70290 2692 3 393 11 5 0\ncpu0 8000 0 4000 35000 1000 0 200 0 0 0\nintr 1\n", "kworker/0:1H", uint64(17538), uint64(8575))
	f.Add("7 (a\nb) Z 1 2 3 4 5 6 7 8 9 10 11 12 13\n", "a\nb", uint64(11), uint64(12))
	f.Fuzz(func(t *testing.T, text, comm string, utime, stime uint64) {
		checkProcStat(t, text)
		checkVmRSS(t, text)
		checkMachineCPU(t, text)

		// A line as the kernel prints it, from known fields.
		state := string(procStates[int(utime%uint64(len(procStates)))])
		line := fmt.Sprintf("%d (%s) %s 1 %d %d 0 -1 4194560 1190 0 0 0 %d %d 0 0 20 0 1 0 12345 2048000 900 18446744073709551615\n",
			stime%4194304, comm, state, utime%100, stime%100, utime, stime)
		s, err := ParseProcStat([]byte(line))
		_, overflow := bits.Add64(utime, stime, 0)
		switch {
		case overflow != 0 || utime+stime > durationTicks:
			if err == nil {
				t.Fatalf("ParseProcStat(%q) = %+v, want an error: utime+stime is beyond a time.Duration", line, s)
			}
		case err != nil:
			t.Fatalf("ParseProcStat(%q): %v", line, err)
		case s != ProcStat{Comm: comm, State: state, UTime: utime, STime: stime}:
			t.Fatalf("ParseProcStat(%q) = %+v, want comm %q, state %s, utime %d, stime %d", line, s, comm, state, utime, stime)
		}

		kib := int64(utime >> 1)
		status := fmt.Sprintf("Name:\t%s\nVmPeak:\t%8d kB\nVmRSS:\t%8d kB\nVmRSS:\t1 kB\n", strings.ReplaceAll(comm, "\n", " "), stime>>1, kib)
		if got, err := ParseVmRSS([]byte(status)); err != nil || got != kib {
			t.Fatalf("ParseVmRSS(%q) = %d, %v; want %d", status, got, err, kib)
		}

		v := [10]uint64{utime, stime, utime ^ stime, stime >> 3, utime >> 7, stime % 1000, utime % 1000, stime >> 32, 5, 0}
		busy, o1 := sum64(v[0], v[1], v[2], v[5], v[6], v[7])
		idle, o2 := sum64(v[3], v[4])
		cpu := fmt.Sprintf("cpu  %d %d %d %d %d %d %d %d %d %d\ncpu0 1 2 3 4 5 6 7 8 9 10\n", v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9])
		m, err := ParseMachineCPU([]byte(cpu))
		switch {
		case o1 || o2:
			if err == nil {
				t.Fatalf("ParseMachineCPU(%q) = %+v, want an error: the sums overflow", cpu, m)
			}
		case err != nil || m != (MachineCPU{Busy: busy, Idle: idle}):
			t.Fatalf("ParseMachineCPU(%q) = %+v, %v; want busy %d, idle %d", cpu, m, err, busy, idle)
		}
	})
}

// durationTicks is the most clock ticks a time.Duration holds.
const durationTicks = uint64(math.MaxInt64 / int64(time.Second/clockTicksPerSecond))

// sum64 returns the sum of vs and whether it overflowed.
func sum64(vs ...uint64) (uint64, bool) {
	var sum, carry uint64
	for _, v := range vs {
		var c uint64
		sum, c = bits.Add64(sum, v, 0)
		carry |= c
	}
	return sum, carry != 0
}

// sameDecimal reports whether field is the decimal digits of n, leading
// zeros allowed.
func sameDecimal(field string, n uint64) bool {
	if field == "" || strings.Trim(field, "0123456789") != "" {
		return false
	}
	trimmed := strings.TrimLeft(field, "0")
	return trimmed == strings.TrimLeft(strconv.FormatUint(n, 10), "0")
}

// checkProcStat checks what ParseProcStat promises of any text it accepts.
func checkProcStat(t *testing.T, text string) {
	s, err := ParseProcStat([]byte(text))
	if err != nil {
		return
	}
	open, end := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || end < open || s.Comm != text[open+1:end] {
		t.Fatalf("ParseProcStat(%q): comm %q is not what lies between the first '(' and the last ')'", text, s.Comm)
	}
	f := strings.Fields(text[end+1:])
	if len(f) < 13 || s.State != f[0] || !sameDecimal(f[11], s.UTime) || !sameDecimal(f[12], s.STime) {
		t.Fatalf("ParseProcStat(%q) = %+v: not fields 3, 14 and 15 after the comm (%q)", text, s, f)
	}
	if cpu := s.CPU(); cpu < 0 || uint64(cpu/(time.Second/clockTicksPerSecond)) != s.UTime+s.STime || s.UTime+s.STime < s.UTime {
		t.Fatalf("ParseProcStat(%q) = %+v: CPU() = %v, not utime+stime clock ticks", text, s, cpu)
	}
}

// checkVmRSS checks what ParseVmRSS promises of any text it accepts.
func checkVmRSS(t *testing.T, text string) {
	kib, err := ParseVmRSS([]byte(text))
	if err != nil {
		return
	}
	if kib < 0 {
		t.Fatalf("ParseVmRSS(%q) = %d, negative", text, kib)
	}
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if n, err := strconv.ParseInt(f[0], 10, 64); len(f) != 2 || f[1] != "kB" || err != nil || n != kib {
				t.Fatalf("ParseVmRSS(%q) = %d: not the first VmRSS line's kB (%q)", text, kib, line)
			}
			return
		}
	}
	t.Fatalf("ParseVmRSS(%q) = %d without a VmRSS line", text, kib)
}

// checkMachineCPU checks what ParseMachineCPU promises of any text it
// accepts.
func checkMachineCPU(t *testing.T, text string) {
	m, err := ParseMachineCPU([]byte(text))
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		t.Fatalf("ParseMachineCPU(%q) = %+v: the first line is not a cpu line", text, m)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			t.Fatalf("ParseMachineCPU(%q) = %+v: field %d %q is not a count", text, m, i+1, f[i+1])
		}
		v[i] = n
	}
	busy, o1 := sum64(v[0], v[1], v[2], v[5], v[6], v[7])
	idle, o2 := sum64(v[3], v[4])
	if o1 || o2 || m != (MachineCPU{Busy: busy, Idle: idle}) {
		t.Fatalf("ParseMachineCPU(%q) = %+v: want busy %d, idle %d (overflow %v)", text, m, busy, idle, o1 || o2)
	}
}
