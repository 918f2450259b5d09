package bench

import (
	"errors"
	"os"
	"os/exec"
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

func FuzzParseProcStat(f *testing.F) {
	f.Add("1 (init) S 0 1 1 0 -1 4194560 1190 0 0 0 12 34 0 0 20 0 1 0 5 2048000 900")
	f.Add("1 ()) R")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseProcStat([]byte(s))
		_, _ = ParseVmRSS([]byte(s))
		_, _ = ParseMachineCPU([]byte(s))
	})
}
