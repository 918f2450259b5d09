package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// logTailLines is how many lines of a child's log an error carries.
const logTailLines = 15

// childConfig describes a long-running child process: PgBouncer,
// `shardline up` or `shardline router`.
type childConfig struct {
	name string
	path string
	args []string
	dir  string
	// env nil means this process's environment.
	env []string
	// cred, when set, runs the child as another user.
	cred *syscall.Credential
	// logPath receives the child's stderr, and its stdout too unless
	// stdout is set.
	logPath string
	// stdout, when set, receives the child's stdout (and logPath does
	// too).
	stdout io.Writer
	logger *slog.Logger
}

// child is a started child process. One goroutine, owned by child, waits
// for it; stop ends both.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error // set before done closes
}

// startChild starts the child in its own process group (a Ctrl-C on the
// terminal reaches only the bench, which stops its children in order) and
// with SIGTERM as its parent-death signal, so a killed bench leaves no
// child behind.
func startChild(cfg childConfig) (*child, error) {
	lf, err := os.OpenFile(cfg.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", cfg.name, err)
	}
	cmd := exec.Command(cfg.path, cfg.args...)
	cmd.Dir = cfg.dir
	cmd.Env = cfg.env
	cmd.Stderr = lf
	cmd.Stdout = lf
	if cfg.stdout != nil {
		cmd.Stdout = io.MultiWriter(lf, cfg.stdout)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cfg.cred}
	// A grandchild that kept the stdout pipe open must not block Wait.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", cfg.name, cfg.path, err)
	}
	c := &child{name: cfg.name, cmd: cmd, logPath: cfg.logPath, logFile: lf, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	if cfg.logger != nil {
		cfg.logger.Debug("child started", "name", cfg.name, "pid", cmd.Process.Pid, "args", cfg.args, "log", cfg.logPath)
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited returns nil while the child runs, and once it has exited an error
// wrapping ErrProcessGone with its exit status and the end of its log.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%w: %s (pid %d) exited: %v%s", ErrProcessGone, c.name, c.pid(), c.waitErr, c.logTail())
	default:
		return nil
	}
}

// logHas reports whether the child's log holds s.
func (c *child) logHas(s string) bool {
	b, err := os.ReadFile(c.logPath)
	return err == nil && strings.Contains(string(b), s)
}

// logTail returns ": " and the last lines of the child's log, or "".
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := tailLines(string(b), logTailLines)
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, " | ")
}

// waitTCP waits until addr accepts a TCP connection and the child's log
// holds logMarker (when not empty): another process may listen on the
// port. It fails with an error wrapping ErrNotReady when the child exits
// first or timeout passes.
func (c *child) waitTCP(ctx context.Context, addr, logMarker string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			if logMarker == "" || c.logHas(logMarker) {
				return nil
			}
			err = fmt.Errorf("the port accepts connections but the log does not say %q", logMarker)
		}
		if gone := c.exited(); gone != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, gone)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s (pid %d) not listening on %s after %v: %v%s", ErrNotReady, c.name, c.pid(), addr, timeout, err, c.logTail())
		}
		select {
		case <-ctx.Done():
		case <-c.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends sig and waits up to grace for the child to exit, then kills
// it. It returns nil when the child exited on the signal (or had exited
// already), else what went wrong. Safe to call more than once.
func (c *child) stop(sig syscall.Signal, grace time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: signal %v: %w", c.name, sig, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("%s (pid %d) did not exit within %v of %v; killed", c.name, c.pid(), grace, sig)
}

// urlUser renders a user and password for a postgres:// URL.
func urlUser(name, password string) string {
	if password == "" {
		return url.User(name).String()
	}
	return url.UserPassword(name, password).String()
}
