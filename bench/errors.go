package bench

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by this package. Errors from a pgbench child are
// *PgbenchError values that wrap one of these or the exec error.
var (
	// ErrInvalidConfig wraps every error from Config.Validate.
	ErrInvalidConfig = errors.New("bench: invalid config")
	// ErrPgbenchNotFound means no pgbench binary was found where looked.
	ErrPgbenchNotFound = errors.New("bench: pgbench not found")
	// ErrNoResult means pgbench exited successfully but its output holds
	// no tps or latency line to read.
	ErrNoResult = errors.New("bench: pgbench printed no result")
	// ErrAborted means pgbench reported that clients aborted: the figures
	// it printed, if any, are incomplete.
	ErrAborted = errors.New("bench: pgbench run aborted")
	// ErrNotInitialized means the pgbench tables do not exist on the
	// server the target reaches; `pgbench -i` (Init) creates them.
	ErrNotInitialized = errors.New("bench: pgbench tables missing (run pgbench -i)")
	// ErrPgBouncerNotFound means no pgbouncer binary was found.
	ErrPgBouncerNotFound = errors.New("bench: pgbouncer not found")
	// ErrProcessGone means a process the bench measures or started has
	// exited.
	ErrProcessGone = errors.New("bench: process gone")
	// ErrNotReady means a process the bench started did not come up: it
	// exited or did not serve in time. The error holds the end of its log.
	ErrNotReady = errors.New("bench: process did not become ready")
)

// PgbenchError is a pgbench invocation that failed: a non-zero exit, a run
// that reported aborted clients, or output without a result. Unwrap returns
// ErrNotInitialized, ErrAborted, ErrNoResult or the error from os/exec, so
// errors.Is works on the cause.
type PgbenchError struct {
	// Op is what was run: "run", "init" or "check".
	Op string
	// Target is the name of the target pgbench was pointed at.
	Target string
	// Workload is the workload of a run ("select-simple", ...); empty for
	// init and check.
	Workload string
	// ExitCode is pgbench's exit status, or -1 if it did not exit normally.
	ExitCode int
	// Stderr holds the last meaningful lines pgbench wrote to stderr, or
	// to stdout when it wrote nothing to stderr.
	Stderr []string
	// Err is the cause.
	Err error
}

func (e *PgbenchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pgbench %s target %q", e.Op, e.Target)
	if e.Workload != "" {
		fmt.Fprintf(&b, " workload %s", e.Workload)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.ExitCode != 0 && !strings.Contains(e.Err.Error(), "exit status") {
		fmt.Fprintf(&b, " (exit status %d)", e.ExitCode)
	}
	if len(e.Stderr) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

func (e *PgbenchError) Unwrap() error { return e.Err }
