package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat. The kernel reports them in USER_HZ whatever its own HZ
// is, and USER_HZ is 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

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
// It never panics.
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
