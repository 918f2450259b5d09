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

// Init creates and fills the pgbench tables at scale on the server that
// target reaches (pgbench -i -s SCALE -q), dropping any old ones. Through
// the router, with the tenant in target.Env, they land on the tenant's shard.
// A failure is a *PgbenchError with Op "init".
func (p *Pgbench) Init(ctx context.Context, target Target, scale int) error {
	if scale < 1 {
		return fmt.Errorf("%w: scale %d: want at least 1", ErrInvalidConfig, scale)
	}
	if err := target.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	_, err := p.invoke(ctx, "init", target, "", []string{"-i", "-s", strconv.Itoa(scale), "-q"})
	return err
}

// Check runs one select-only transaction on target, to fail early on a
// target that cannot be reached or lacks the pgbench tables (then the error
// wraps ErrNotInitialized). A failure is a *PgbenchError with Op "check".
func (p *Pgbench) Check(ctx context.Context, target Target) error {
	if err := target.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	_, err := p.invoke(ctx, "check", target, "", []string{"-n", "-S", "-c", "1", "-t", "1"})
	return err
}

// Bench runs one benchmark of workload in mode on target and returns what
// pgbench reported. A failure is a *PgbenchError with Op "run".
func (p *Pgbench) Bench(ctx context.Context, target Target, mode, workload string, clients int, d time.Duration) (Output, error) {
	wargs, err := workloadArgs(workload)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	args := append([]string{"-n"}, wargs...)
	args = append(args,
		"-M", mode,
		"-c", strconv.Itoa(clients),
		"-j", strconv.Itoa(min(clients, 2)),
		"-T", strconv.Itoa(int(d/time.Second)))
	// pgbench ends -T runs itself; the deadline only guards against a
	// server that stops answering.
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	return p.invoke(ctx, "run", target, mode, args)
}

// invoke runs pgbench with args and target's DSN and environment, and parses
// a benchmark summary when op is "run".
func (p *Pgbench) invoke(ctx context.Context, op string, target Target, mode string, args []string) (Output, error) {
	cmd := exec.CommandContext(ctx, p.Path, append(args, target.DSN)...)
	cmd.Env = append(os.Environ(), target.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	// The DSN may hold a password: log only the target's name.
	p.Logger.Debug("pgbench", "op", op, "target", target.Name, "mode", mode, "args", args)
	start := time.Now()
	runErr := cmd.Run()
	p.Logger.Debug("pgbench done", "op", op, "target", target.Name, "mode", mode,
		"elapsed", time.Since(start), "err", runErr)

	if ctx.Err() != nil {
		return Output{}, fmt.Errorf("pgbench %s target %q: %w", op, target.Name, context.Cause(ctx))
	}
	fail := func(cause error) error {
		return &PgbenchError{
			Op:       op,
			Target:   target.Name,
			Mode:     mode,
			ExitCode: cmd.ProcessState.ExitCode(),
			Stderr:   tailLines(stderr.String(), stderrLines),
			Err:      cause,
		}
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		// Not started, or I/O trouble: no exit code to read.
		if cmd.ProcessState == nil {
			return Output{}, fmt.Errorf("pgbench %s target %q: %w", op, target.Name, runErr)
		}
		return Output{}, fail(runErr)
	}
	if cause := classify(cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()); cause != nil {
		return Output{}, fail(cause)
	}
	if op != "run" {
		return Output{}, nil
	}
	out, err := ParseOutput(stdout.String())
	if err != nil {
		return Output{}, fail(err)
	}
	return out, nil
}
