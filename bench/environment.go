package bench

import (
	"debug/buildinfo"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Environment is the machine and the software a report was measured on.
type Environment struct {
	// NProc is the number of CPUs this process may use.
	NProc int `json:"nproc"`
	// CPUModel is the first "model name" of /proc/cpuinfo.
	CPUModel string `json:"cpu_model"`
	// MemTotalMiB is MemTotal of /proc/meminfo.
	MemTotalMiB int64  `json:"mem_total_mib"`
	Kernel      string `json:"kernel"`
	// GoVersion is the Go version the bench (and, when it starts the
	// cluster itself, the router) was built with.
	GoVersion string `json:"go_version"`
	// Shardline is the VCS revision of the shardline binary that ran the
	// router (the throwaway cluster's; "+dirty" when its tree had
	// changes); empty when unknown (an external cluster).
	Shardline string `json:"shardline_revision,omitempty"`
	// Bench is the VCS revision of the binary that ran the bench.
	Bench      string `json:"bench_revision,omitempty"`
	PostgreSQL string `json:"postgresql_version,omitempty"`
	PgBouncer  string `json:"pgbouncer_version,omitempty"`
	Pgbench    string `json:"pgbench_version"`
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg's first three fields
	// when the run started and ended: other work on the machine shows.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
}

// ReadEnvironment fills the machine fields of an Environment from /proc
// and the running binary; fields it cannot read stay empty. The versions
// of PostgreSQL, PgBouncer and pgbench are the caller's to fill.
func ReadEnvironment() Environment {
	e := Environment{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		e.CPUModel = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		e.MemTotalMiB = memTotalMiB(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		e.Bench = vcsRevision(bi)
	}
	return e
}

// BinaryRevision returns the VCS revision a Go binary was built from, with
// "+dirty" when its tree had changes, or "" when it does not say.
func BinaryRevision(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	return vcsRevision(bi)
}

// cpuModel returns the first "model name" (x86) or "Model"/"Hardware"
// (arm) value of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, key := range []string{"model name", "Model", "Hardware"} {
		for line := range strings.Lines(cpuinfo) {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

// memTotalMiB returns MemTotal of /proc/meminfo in MiB, 0 if absent.
func memTotalMiB(meminfo string) int64 {
	for line := range strings.Lines(meminfo) {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if kib, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return kib / 1024
			}
		}
	}
	return 0
}

// loadAvg returns the 1, 5 and 15 minute load averages, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func vcsRevision(bi *debug.BuildInfo) string {
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && modified == "true" {
		rev += "+dirty"
	}
	return rev
}
