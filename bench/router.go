package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const (
	// routerReadyMarker starts the line `shardline router` prints when it
	// serves.
	routerReadyMarker = "shardline router ready:"
	// routerReadyTimeout bounds the wait for that line: dialing etcd (10 s
	// at most) and loading the placement.
	routerReadyTimeout = time.Minute
	// routerStopGrace exceeds the 15 s in which `shardline router` stops
	// after SIGTERM.
	routerStopGrace = 20 * time.Second
)

// RouterConfig describes a `shardline router` child process: a router of
// its own against a running cluster's etcd, on free loopback ports.
type RouterConfig struct {
	// Command is the shardline binary. Required.
	Command string
	// Args are put before "router" (a test binary uses them to act as
	// shardline); usually empty.
	Args []string
	// Env, when set, is the child's environment; nil means this
	// process's.
	Env []string
	// Name labels the process in logs and errors, for example the target
	// it serves. Required.
	Name string
	// LogPath receives the child's stdout and stderr. Required; its
	// directory must exist.
	LogPath string
	// Etcd is the cluster's etcd client endpoints, comma-separated
	// (--etcd). Required.
	Etcd string
	// PoolSize is --pool-size: server connections per shard member
	// (default DefaultPoolSize).
	PoolSize int
	// Cluster is --cluster, the placement's name in etcd; empty leaves
	// the router's default, `shardline up`'s.
	Cluster string
	// Flags are more flags of `shardline router` (--tls-cert ...).
	Flags []string
	// Logger receives start and stop lines; nil discards them.
	Logger *slog.Logger
}

// RouterProcess is a running `shardline router` child. Its PID is the
// router's and nothing else runs in it.
type RouterProcess struct {
	// DSN is the router's connection string as it printed it.
	DSN string
	// MetricsURL is its Prometheus endpoint (--metrics).
	MetricsURL string
	// PoolSize is its --pool-size.
	PoolSize int
	proc     *child
	log      *slog.Logger
}

// StartRouter starts `shardline router` on free ports and waits until it
// prints its ready line. When a port was taken in the meantime it tries
// again on other ports (up to three times). The error wraps ErrNotReady
// with the end of the router's log when it exits or is not ready within a
// minute.
func StartRouter(ctx context.Context, c RouterConfig) (*RouterProcess, error) {
	if c.Command == "" || c.Name == "" || c.LogPath == "" || c.Etcd == "" {
		return nil, fmt.Errorf("%w: router: Command, Name, LogPath and Etcd are required", ErrInvalidConfig)
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.PoolSize < 1 {
		return nil, fmt.Errorf("%w: router: pool size %d: want at least 1", ErrInvalidConfig, c.PoolSize)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return retryPortTaken(ctx, c.Logger.With("name", c.Name), "router", func() (*RouterProcess, error) {
		return startRouterOnce(ctx, c)
	})
}

func startRouterOnce(ctx context.Context, c RouterConfig) (*RouterProcess, error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), c.Args...), "router",
		"--etcd", c.Etcd, "--listen", addrs[0], "--metrics", addrs[1],
		"--pool-size", strconv.Itoa(c.PoolSize),
		// On loopback, measured without passwords: pgbench connects once
		// per client, and the standalone router has no password file.
		"--auth", "trust")
	if c.Cluster != "" {
		args = append(args, "--cluster", c.Cluster)
	}
	args = append(args, c.Flags...)
	var dsn, metricsURL string
	proc, err := startReadyChild(ctx, readyChildConfig{
		childConfig: childConfig{
			name: "shardline router (" + c.Name + ")", path: c.Command, args: args, dir: filepath.Dir(c.LogPath), env: c.Env,
			logPath: c.LogPath, logger: c.Logger,
		},
		marker: routerReadyMarker, timeout: routerReadyTimeout, grace: routerStopGrace,
		started: func(proc *child) {
			c.Logger.Info("starting router", "name", c.Name, "pid", proc.pid(), "listen", addrs[0], "pool_size", c.PoolSize, "log", proc.logPath)
		},
		parse: func(line string) (err error) {
			dsn, metricsURL, err = ParseRouterReadyLine(line)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	c.Logger.Info("router ready", "name", c.Name, "pid", proc.pid(), "router", dsn)
	return &RouterProcess{DSN: dsn, MetricsURL: metricsURL, PoolSize: c.PoolSize, proc: proc, log: c.Logger}, nil
}

// PID is the process id of the router.
func (r *RouterProcess) PID() int { return r.proc.pid() }

// Err returns nil while the router runs and an error wrapping
// ErrProcessGone once it has exited.
func (r *RouterProcess) Err() error { return r.proc.exited() }

// LogPath is the file holding the router's stdout and stderr.
func (r *RouterProcess) LogPath() string { return r.proc.logPath }

// Close stops the router with SIGTERM and kills it after 20 s. Safe to
// call more than once.
func (r *RouterProcess) Close() error {
	err := r.proc.stop(syscall.SIGTERM, routerStopGrace)
	r.log.Info("router stopped", "name", r.proc.name, "pid", r.proc.pid(), "err", err)
	return err
}

// ParseRouterReadyLine reads the router DSN and the metrics URL from the
// line that `shardline router` prints when ready:
//
//	shardline router ready: router postgres://...  metrics http://...
func ParseRouterReadyLine(line string) (dsn, metricsURL string, err error) {
	return parseReadyLine(line, routerReadyMarker, "metrics")
}
