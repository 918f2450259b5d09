package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat. The kernel reports them in USER_HZ whatever its own HZ
// is, and USER_HZ is 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// maxCPUTicks is the most clock ticks a time.Duration holds (292 years).
const maxCPUTicks = math.MaxInt64 / uint64(time.Second/clockTicksPerSecond)

// ProcStat holds the fields of /proc/PID/stat that the bench reads.
type ProcStat struct {
	// Comm is the command name (field 2, without its parentheses).
	Comm string
	// State is the one-letter process state (field 3).
	State string
	// UTime and STime are user and system CPU time of the process, all
	// its threads, in clock ticks (fields 14 and 15); time of waited-for
	// children is not included.
	UTime, STime uint64
}

// CPU returns UTime+STime as a duration.
func (s ProcStat) CPU() time.Duration {
	return time.Duration(s.UTime+s.STime) * time.Second / clockTicksPerSecond
}

// ParseProcStat parses the content of /proc/PID/stat. The command name may
// hold spaces and parentheses, so fields are counted after its last ')'.
// CPU time beyond a time.Duration is an error, so CPU is exact. It never
// panics.
func ParseProcStat(b []byte) (ProcStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return ProcStat{}, fmt.Errorf("proc stat: no (comm) field")
	}
	s := ProcStat{Comm: string(b[open+1 : end])}
	// After ")": field 3 (state) onwards.
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("proc stat: %d fields after comm, want at least 13", len(f))
	}
	s.State = f[0]
	var err error
	if s.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: utime %q: %w", f[11], err)
	}
	if s.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: stime %q: %w", f[12], err)
	}
	if s.UTime > maxCPUTicks || s.STime > maxCPUTicks-s.UTime {
		return ProcStat{}, fmt.Errorf("proc stat: utime %d + stime %d clock ticks: more CPU time than a time.Duration holds", s.UTime, s.STime)
	}
	return s, nil
}

// ReadProcStat reads /proc/PID/stat. A process that is gone (or a zombie)
// is an error wrapping ErrProcessGone.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if os.IsNotExist(err) {
			return ProcStat{}, fmt.Errorf("%w: pid %d", ErrProcessGone, pid)
		}
		return ProcStat{}, err
	}
	s, err := ParseProcStat(b)
	if err != nil {
		return ProcStat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if s.State == "Z" || s.State == "X" {
		return ProcStat{}, fmt.Errorf("%w: pid %d is %s", ErrProcessGone, pid, s.State)
	}
	return s, nil
}

// ParseVmRSS returns the VmRSS line of /proc/PID/status in KiB.
func ParseVmRSS(status []byte) (int64, error) {
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: VmRSS line %q", strings.TrimSpace(line))
		}
		kib, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kib < 0 {
			return 0, fmt.Errorf("proc status: VmRSS %q is not a size", f[0])
		}
		return kib, nil
	}
	return 0, fmt.Errorf("proc status: no VmRSS line")
}

// ReadRSS returns the resident set size of pid in KiB.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		if os.IsNotExist(err) {
			return 0, fmt.Errorf("%w: pid %d", ErrProcessGone, pid)
		}
		return 0, err
	}
	kib, err := ParseVmRSS(b)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return kib, nil
}

// MachineCPU is the first line of /proc/stat: the time all CPUs spent,
// summed over them, in clock ticks.
type MachineCPU struct {
	// Busy is user, nice, system, irq, softirq and steal time; guest time
	// is inside user and nice already, so it is not added again.
	Busy uint64
	// Idle is idle and iowait time: a CPU waiting for I/O runs nothing.
	Idle uint64
}

// ParseMachineCPU parses the "cpu" line that /proc/stat begins with:
// user nice system idle iowait irq softirq steal [guest guest_nice].
// Kernels before 2.6.33 print fewer fields; the bench needs the eight.
// Sums that overflow are an error. It never panics.
func ParseMachineCPU(b []byte) (MachineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("proc stat: first line %q is not a cpu line with eight fields", line)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("proc stat: cpu field %d %q: %w", i+1, f[i+1], err)
		}
		v[i] = n
	}
	busy, ok1 := sumTicks(v[0], v[1], v[2], v[5], v[6], v[7])
	idle, ok2 := sumTicks(v[3], v[4])
	if !ok1 || !ok2 {
		return MachineCPU{}, fmt.Errorf("proc stat: cpu line %q: the busy or idle time overflows", line)
	}
	return MachineCPU{Busy: busy, Idle: idle}, nil
}

// sumTicks returns the sum of ticks and whether it fits in a uint64.
func sumTicks(ticks ...uint64) (uint64, bool) {
	var sum uint64
	for _, t := range ticks {
		if sum+t < sum {
			return 0, false
		}
		sum += t
	}
	return sum, true
}

// ReadMachineCPU reads the machine's CPU time from /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return ParseMachineCPU(b)
}

// Since returns the busy CPU time between before and m, and the share of
// all CPUs' time in that window that was idle (0 to 1). Counters that went
// backwards (they do not, short of a bug) give zero.
func (m MachineCPU) Since(before MachineCPU) (busy time.Duration, idle float64) {
	if m.Busy < before.Busy || m.Idle < before.Idle {
		return 0, 0
	}
	b, i := m.Busy-before.Busy, m.Idle-before.Idle
	if b+i == 0 {
		return 0, 0
	}
	return time.Duration(b) * time.Second / clockTicksPerSecond, float64(i) / float64(b+i)
}
