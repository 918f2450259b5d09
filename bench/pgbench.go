package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgbenchGlob is where Debian and Ubuntu install the binaries of each
// PostgreSQL major version.
const pgbenchGlob = "/usr/lib/postgresql/*/bin/pgbench"

// stderrLines is how many of pgbench's last stderr lines an error carries.
const stderrLines = 5

// Pgbench runs one pgbench binary. Its methods block until the child exits;
// cancelling the context ends the child with SIGTERM (SIGKILL 5 s later).
type Pgbench struct {
	// Path is the binary to run.
	Path string
	// Logger receives one debug line per invocation; nil discards.
	Logger *slog.Logger
}

// NewPgbench finds pgbench (see FindPgbench) and returns a runner for it.
func NewPgbench(path string, logger *slog.Logger) (*Pgbench, error) {
	p, err := FindPgbench(path)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pgbench{Path: p, Logger: logger}, nil
}

// FindPgbench resolves the pgbench binary: path itself when it names a file
// (with a slash) or a command on PATH; when path is empty, pgbench on PATH,
// then the newest PostgreSQL version's /usr/lib/postgresql/*/bin/pgbench.
// The error wraps ErrPgbenchNotFound.
func FindPgbench(path string) (string, error) {
	return findPgbench(path, exec.LookPath, pgbenchGlob)
}

func findPgbench(path string, lookPath func(string) (string, error), glob string) (string, error) {
	if path != "" {
		p, err := lookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrPgbenchNotFound, err)
		}
		return p, nil
	}
	if p, err := lookPath("pgbench"); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob(glob) // the pattern is constant and valid
	// Newest major version first: compare the numeric directory name
	// (.../postgresql/15/bin/pgbench), so 9.6 sorts before 10.
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	slices.SortFunc(matches, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, m := range matches {
		if p, err := lookPath(m); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: not on PATH nor at %s; install PostgreSQL's client programs or pass its path", ErrPgbenchNotFound, glob)
}

// Version returns pgbench's version line, for example
// "pgbench (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
func (p *Pgbench) Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, p.Path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", p.Path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Init creates and fills the pgbench tables at scale on the server that e
// reaches (pgbench -i -s SCALE -q), dropping any old ones. Through the
// router, with the tenant in e.Options, they land on the tenant's shard.
// name labels errors. A failure is a *PgbenchError with Op "init".
func (p *Pgbench) Init(ctx context.Context, name string, e Endpoint, scale int) error {
	if scale < 1 {
		return fmt.Errorf("%w: scale %d: want at least 1", ErrInvalidConfig, scale)
	}
	if err := e.validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, name, err)
	}
	_, err := p.invoke(ctx, invocation{op: "init", target: name, endpoint: e,
		args: []string{"-i", "-s", strconv.Itoa(scale), "-q"}})
	return err
}

// Check runs one select-only transaction on e, to fail early on a server
// that cannot be reached or lacks the pgbench tables (then the error wraps
// ErrNotInitialized). A failure is a *PgbenchError with Op "check".
func (p *Pgbench) Check(ctx context.Context, name string, e Endpoint) error {
	if err := e.validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, name, err)
	}
	_, err := p.invoke(ctx, invocation{op: "check", target: name, endpoint: e,
		args: []string{"-n", "-S", "-c", "1", "-t", "1"}})
	return err
}

// BenchRun is one pgbench benchmark invocation.
type BenchRun struct {
	// Target names the target, for errors and logs.
	Target   string
	Endpoint Endpoint
	// Workload must not be the idle workload.
	Workload Workload
	Clients  int
	Threads  int
	// Duration is -T, whole seconds.
	Duration time.Duration
	// LogDir, when not empty, makes pgbench write its per-transaction log
	// (-l) into a new directory under LogDir; Bench reads the latencies
	// from it and removes it.
	LogDir string
}

// Bench runs one benchmark and returns what pgbench reported and, with
// r.LogDir set, the latency of every transaction that completed, in
// microseconds, unsorted. A failure is a *PgbenchError with Op "run".
func (p *Pgbench) Bench(ctx context.Context, r BenchRun) (Output, []int64, error) {
	if r.Workload.Idle || len(r.Workload.Args) == 0 {
		return Output{}, nil, fmt.Errorf("%w: workload %q does not run pgbench", ErrInvalidConfig, r.Workload.Name)
	}
	args := append([]string{"-n"}, r.Workload.Args...)
	args = append(args,
		"-c", strconv.Itoa(r.Clients),
		"-j", strconv.Itoa(max(1, r.Threads)),
		"-T", strconv.Itoa(int(r.Duration/time.Second)))
	var logDir string
	if r.LogDir != "" {
		var err error
		if logDir, err = os.MkdirTemp(r.LogDir, "pgbench-"); err != nil {
			return Output{}, nil, fmt.Errorf("pgbench log directory: %w", err)
		}
		defer os.RemoveAll(logDir)
		args = append(args, "-l", "--log-prefix", filepath.Join(logDir, "tx"))
	}
	// pgbench ends -T runs itself; the deadline only guards against a
	// server that stops answering.
	ctx, cancel := context.WithTimeout(ctx, r.Duration+time.Minute)
	defer cancel()
	out, err := p.invoke(ctx, invocation{op: "run", target: r.Target, workload: r.Workload.Name, endpoint: r.Endpoint, args: args})
	if err != nil || logDir == "" {
		return out, nil, err
	}
	lat, err := readTxLogs(filepath.Join(logDir, "tx"))
	if err != nil {
		return out, nil, fmt.Errorf("pgbench run target %q workload %s: %w", r.Target, r.Workload.Name, err)
	}
	return out, lat, nil
}

// invocation is one pgbench child.
type invocation struct {
	op       string // "init", "check" or "run"
	target   string
	workload string
	endpoint Endpoint
	args     []string
}

// invoke runs pgbench with in.args and the endpoint's DSN and options, and
// parses a benchmark summary when the op is "run".
func (p *Pgbench) invoke(ctx context.Context, in invocation) (Output, error) {
	cmd := exec.CommandContext(ctx, p.Path, append(slices.Clone(in.args), in.endpoint.DSN)...)
	// The endpoint alone decides the startup options: a PGOPTIONS of our
	// own environment must not reach PgBouncer or PostgreSQL.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PGOPTIONS=") })
	cmd.Env = append(cmd.Env, in.endpoint.env()...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	// The DSN may hold a password: log only the target's name.
	p.Logger.Debug("pgbench", "op", in.op, "target", in.target, "workload", in.workload, "args", in.args)
	start := time.Now()
	runErr := cmd.Run()
	p.Logger.Debug("pgbench done", "op", in.op, "target", in.target, "workload", in.workload,
		"elapsed", time.Since(start), "err", runErr)

	if ctx.Err() != nil {
		return Output{}, fmt.Errorf("pgbench %s target %q: %w", in.op, in.target, context.Cause(ctx))
	}
	fail := func(cause error) error {
		lines := tailLines(stderr.String(), stderrLines)
		if len(lines) == 0 {
			// Quiet on stderr: the end of the summary says what it did
			// ("number of transactions actually processed: 0").
			lines = tailLines(stdout.String(), 2)
		}
		return &PgbenchError{
			Op:       in.op,
			Target:   in.target,
			Workload: in.workload,
			ExitCode: cmd.ProcessState.ExitCode(),
			Stderr:   lines,
			Err:      cause,
		}
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		// Not started, or I/O trouble: no exit code to read.
		if cmd.ProcessState == nil {
			return Output{}, fmt.Errorf("pgbench %s target %q: %w", in.op, in.target, runErr)
		}
		return Output{}, fail(runErr)
	}
	if cause := classify(cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()); cause != nil {
		return Output{}, fail(cause)
	}
	if in.op != "run" {
		return Output{}, nil
	}
	out, err := ParseOutput(stdout.String())
	if err != nil {
		return Output{}, fail(err)
	}
	return out, nil
}
