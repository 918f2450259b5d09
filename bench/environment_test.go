package bench

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestEnvironmentParsers(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n"
	if got := cpuModel(x86); got != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpuModel(x86) = %q", got)
	}
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
	if got := cpuModel(arm); got != "Raspberry Pi 4 Model B Rev 1.4" {
		t.Errorf("cpuModel(arm) = %q", got)
	}
	if got := cpuModel(""); got != "" {
		t.Errorf("cpuModel(empty) = %q", got)
	}
	if got := memTotalMiB("MemTotal:       24684084 kB\nMemFree:        22307112 kB\n"); got != 24105 {
		t.Errorf("memTotalMiB = %d, want 24105", got)
	}
	if got := memTotalMiB("MemTotal: lots\n"); got != 0 {
		t.Errorf("memTotalMiB(bad) = %d", got)
	}
	if got := BinaryRevision("/nonexistent"); got != "" {
		t.Errorf("BinaryRevision of a missing file = %q", got)
	}
	if exe, err := os.Executable(); err == nil {
		_ = BinaryRevision(exe) // a test binary has no VCS stamp; it must not fail
	}
	e := ReadEnvironment()
	if e.NProc != runtime.NumCPU() || !strings.HasPrefix(e.GoVersion, "go") {
		t.Errorf("ReadEnvironment = %+v", e)
	}
}
