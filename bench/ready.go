package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyChildConfig describes a child that prints a line holding marker
// once it serves: `shardline up` or `shardline router`.
type readyChildConfig struct {
	childConfig // its stdout is set to watch for the ready line
	marker      string
	// timeout bounds the wait for the ready line.
	timeout time.Duration
	// grace is how long the child may take to exit after SIGTERM when
	// it is stopped, before it is killed.
	grace time.Duration
	// started, when set, is called once the child runs (to log its pid).
	started func(*child)
	// parse reads the ready line.
	parse func(line string) error
}

// startReadyChild starts the child and waits until it prints its ready
// line and parse accepts it. On failure the child is stopped, and the
// error wraps ErrNotReady (with the end of its log) when the child exits
// first or is not ready within the timeout.
func startReadyChild(ctx context.Context, c readyChildConfig) (*child, error) {
	ready := newReadyWatcher(c.marker)
	c.stdout = ready
	proc, err := startChild(c.childConfig)
	if err != nil {
		return nil, err
	}
	if c.started != nil {
		c.started(proc)
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-ready.c:
	case <-proc.done:
		return nil, fmt.Errorf("%w: %w", ErrNotReady, proc.exited())
	case <-timer.C:
		_ = proc.stop(syscall.SIGTERM, c.grace)
		return nil, fmt.Errorf("%w: %s not ready after %v%s", ErrNotReady, c.name, c.timeout, proc.logTail())
	case <-ctx.Done():
		_ = proc.stop(syscall.SIGTERM, c.grace)
		return nil, context.Cause(ctx)
	}
	if err := c.parse(line); err != nil {
		_ = proc.stop(syscall.SIGTERM, c.grace)
		return nil, err
	}
	return proc, nil
}

// retryPortTaken calls start up to three times while it fails with a port
// in use: a port found free may be taken before the child binds it, and
// start picks other ports. log says so, naming what is started.
func retryPortTaken[T any](ctx context.Context, log *slog.Logger, what string, start func() (T, error)) (T, error) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		v, err := start()
		if err == nil || attempt == attempts || ctx.Err() != nil || !strings.Contains(err.Error(), "in use") {
			return v, err
		}
		log.Info("a port was taken; starting the "+what+" on other ports", "err", err)
	}
}

// parseReadyLine reads, from a ready line that starts with marker, the
// postgres:// DSN after "router" and the http:// URL after urlKey.
func parseReadyLine(line, marker, urlKey string) (dsn, u string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), marker)
	if !ok {
		return "", "", fmt.Errorf("ready line %q does not start with %q", line, marker)
	}
	f := strings.Fields(rest)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "router":
			dsn = f[i+1]
		case urlKey:
			u = f[i+1]
		}
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return "", "", fmt.Errorf("ready line %q: no router postgres:// DSN", line)
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", "", fmt.Errorf("ready line %q: no %s http:// URL", line, urlKey)
	}
	return dsn, u, nil
}

// readyWatcher is the child's stdout: it passes on the first line holding
// its marker. It is safe for the one goroutine of os/exec that writes.
type readyWatcher struct {
	marker string
	mu     sync.Mutex
	buf    []byte
	sent   bool
	c      chan string
}

func newReadyWatcher(marker string) *readyWatcher {
	return &readyWatcher{marker: marker, c: make(chan string, 1)}
}

func (w *readyWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > 64*1024 { // no newline in sight: keep the tail
				w.buf = w.buf[len(w.buf)-1024:]
			}
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if strings.Contains(line, w.marker) {
			w.sent = true
			w.buf = nil
			w.c <- line
			return len(p), nil
		}
	}
}
