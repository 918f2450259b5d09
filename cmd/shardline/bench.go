package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shardline/shardline/bench"
)

const benchUsage = `usage: shardline bench [flags]

Compares, side by side in one run, PostgreSQL directly, PgBouncer in
transaction mode, and the Shardline router (pass-through to one shard, and
routing across two shards by tenant), and as controls the two shards'
primaries directly, a PgBouncer in front of both (one database name per
shard) and a router whose two shards are both on the first server
(router-2shards-1server: the routing without the second server), with pgbench: select-only in simple,
extended and prepared modes, writes (-N), connection churn (-C), and 1000
idle connections. Targets alternate within each round, the order rotating
by one place per round (A B C, B C A, C A B ...);
the report gives medians over rounds of TPS, p50 and p99 latency, the
proxy's CPU time per transaction and memory per idle connection, and ratios
to PostgreSQL directly and to PgBouncer. See docs/bench.md.

By default it is self-contained: it starts a throwaway cluster as a child
process (shardline up --shards 2 --replicas 0, every port a free one on
127.0.0.1), a router process of its own for each router target (shardline
router against the cluster's etcd: --pool-size for router, half of it per
shard for router-2shards, so both have the same server connections in all)
and its own PgBouncers (pgbouncer on PATH or in /usr/sbin; pgbouncer-2shards
likewise with half the pool per shard), and stops them
at the end. --external (or --direct) benchmarks a running cluster instead.

Replica workloads, not run by default (--workloads replica-read,write-token):
replica-read compares select-only (-S) through the router with
shardline.target=primary against shardline.target=replica (both with
default_transaction_read_only=on) and reports the share of reads the
replicas served; write-token compares -N through the router with the
read-your-writes token step and without it (a second throwaway cluster
started with --no-write-tokens). They run on targets of their own, on a
cluster with one streaming replica per shard, and need no --targets.

--quick is a short run for CI: 2 s runs, 1 round, 32 clients; flags given
explicitly win over it.

Flags:
`

// benchCommand is `shardline bench` with its flags parsed; Run does the work.
// The flags that are the benchmark's settings set its SuiteConfig (Dir:
// empty for a temporary work directory; Shardline: empty for this binary;
// ShardlineArgs and ShardlineEnv, which no flag sets, let tests run their
// own binary as shardline); the others are the command's own.
type benchCommand struct {
	bench.SuiteConfig

	Output     string // "text" or "json"
	ReportPath string // Markdown report; empty for none
	JSONPath   string // JSON report; empty for none
	From       string // an earlier run's JSON report to render instead of running; empty to run
	Keep       bool   // keep the work directory

	// External and the fields after it are --external's cluster.
	External  bool
	Router    string
	Direct    string
	Direct2   string
	Tenant    string
	Tenant2   string
	RouterPID int
	Init      initMode

	LogLevel slog.Level
	Stdout   io.Writer
	Stderr   io.Writer
}

// quickSettings are what --quick sets, unless the flag is given too.
var quickSettings = map[string]string{
	"duration": "2s",
	"rounds":   "1",
	"clients":  "32",
	"warmup":   "1s",
}

func runBench(ctx context.Context, env *cliEnv, args []string) error {
	c, err := parseBench(env, args)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// parseBench parses bench's command line into a benchCommand.
func parseBench(env *cliEnv, args []string) (*benchCommand, error) {
	c := &benchCommand{SuiteConfig: bench.DefaultSuiteConfig(), Init: initAuto, Stdout: env.Stdout, Stderr: env.Stderr, LogLevel: slog.LevelInfo}
	d := c.SuiteConfig
	var (
		targets, workloads, clients string
		quick, verbose              bool
	)
	fs := newFlagSet(env, "bench")
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&targets, "targets", strings.Join(d.Targets, ","), "comma-separated targets: "+strings.Join(bench.AllTargets(), ", "))
	fs.StringVar(&workloads, "workloads", strings.Join(d.Workloads, ","), "comma-separated workloads: select-simple, select-extended, select-prepared, write, churn, idle; and the replica workloads replica-read, write-token")
	fs.StringVar(&clients, "clients", joinInts(d.Clients), "comma-separated pgbench client counts, one cell each")
	fs.IntVar(&c.Rounds, "rounds", d.Rounds, "runs per target and cell; the report gives medians")
	fs.DurationVar(&c.Duration, "duration", d.Duration, "length of each pgbench run (-T), whole seconds")
	fs.DurationVar(&c.Warmup, "warmup", d.Warmup, "one unreported select-simple run per target first; 0 for none")
	fs.IntVar(&c.MaxThreads, "threads", d.MaxThreads, "pgbench threads per run: min(clients, threads) pgbench processes of one thread each (router-2shards: one per tenant)")
	fs.IntVar(&c.IdleConns, "idle-conns", d.IdleConns, "connections the idle workload holds open")
	fs.IntVar(&c.PoolSize, "pool-size", d.PoolSize, "PgBouncer's default_pool_size and the router target's server connections per shard (router-2shards: half that per shard)")
	fs.IntVar(&c.Scale, "scale", d.Scale, "pgbench -i scale factor")
	fs.BoolVar(&quick, "quick", false, "a short run for CI (2s runs, 1 round, 32 clients)")
	fs.StringVar(&c.Output, "o", "text", "output format on stdout: text or json")
	fs.StringVar(&c.ReportPath, "report", "", "also write a Markdown report to this `file` (for example docs/performance/latest.md)")
	fs.StringVar(&c.JSONPath, "json", "", "also write the JSON report to this `file`")
	fs.StringVar(&c.From, "from", "", "run nothing: read an earlier run's JSON report from this `file`, summarize its runs again and write the outputs (-o, --report, --json)")
	fs.StringVar(&c.Dir, "dir", "", "work directory for the cluster, PgBouncer and logs (default: a new one under $TMPDIR, removed afterwards)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory (logs of up, the routers, PgBouncer)")
	fs.StringVar(&c.PgbenchPath, "pgbench", "", "pgbench binary (default: on PATH, then /usr/lib/postgresql/*/bin)")
	fs.StringVar(&c.PgBouncerPath, "pgbouncer", "", "pgbouncer binary (default: on PATH, then /usr/sbin)")
	fs.StringVar(&c.Shardline, "shardline", "", "shardline binary that runs the throwaway cluster and the routers (default: this one)")
	fs.BoolVar(&verbose, "v", false, "debug logs (every pgbench invocation)")
	fs.BoolVar(&c.External, "external", false, "benchmark a running cluster: --router, --direct, --tenant")
	fs.StringVar(&c.Router, "router", "postgres://postgres@127.0.0.1:6432/app?sslmode=disable", "--external: router `DSN`")
	fs.StringVar(&c.Direct, "direct", "", "--external: `DSN` of the primary of the shard that holds --tenant (implies --external)")
	fs.StringVar(&c.Tenant, "tenant", "t1", "--external: tenant of the router target")
	fs.StringVar(&c.Tenant2, "tenant2", "", "--external: a tenant on another shard, for router-2shards and direct-2shards (left out without it)")
	fs.StringVar(&c.Direct2, "direct2", "", "--external: `DSN` of the primary of the shard that holds --tenant2, for direct-2shards (left out without it)")
	fs.IntVar(&c.RouterPID, "router-pid", 0, "--external: the router's process id, for its CPU and memory (n/a without it)")
	fs.Var(&c.Init, "init", "--external: create the pgbench tables through the router: auto (when missing), true (always) or false")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unexpected arguments %q", fs.Args())
	}
	if quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range quickSettings {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, err
				}
			}
		}
	}
	if verbose {
		c.LogLevel = slog.LevelDebug
	}
	c.Targets = splitList(targets)
	c.Workloads = splitList(workloads)
	c.Clients = nil
	for _, s := range splitList(clients) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, usageErr("--clients %q: %q is not a number", clients, s)
		}
		c.Clients = append(c.Clients, n)
	}
	if c.Direct != "" {
		c.External = true
	}
	c.Command = shellJoin(append([]string{"shardline", "bench"}, args...))
	return c, nil
}

// Run checks the settings (a bad one is a usage error), runs the benchmark
// (bench.RunSuite: it prepares the targets, runs the matrix and stops what
// it started) and writes the outputs. Failed cells make it return an error
// after the outputs are written.
func (c *benchCommand) Run(ctx context.Context) (err error) {
	if c.Output != "text" && c.Output != "json" {
		return usageErr("-o %q: want text or json", c.Output)
	}
	if c.From != "" {
		return c.render()
	}
	cfg, err := c.suiteConfig()
	if err != nil {
		return err
	}
	// Check the settings before starting anything.
	if err := cfg.Validate(); err != nil {
		return usageErr("%v", strings.TrimPrefix(err.Error(), bench.ErrInvalidConfig.Error()+": "))
	}
	dir, removeDir, err := c.workDir()
	if err != nil {
		return err
	}
	cfg.Dir = dir
	defer func() {
		switch {
		case c.Keep:
			fmt.Fprintf(c.Stderr, "work directory kept: %s\n", dir)
		case err != nil:
			// Keep the logs of up, the routers and PgBouncer, not the data.
			os.RemoveAll(filepath.Join(dir, "up", "cluster"))
			os.RemoveAll(filepath.Join(dir, "up-no-tokens", "cluster"))
			os.RemoveAll(filepath.Join(dir, "pgbench"))
			fmt.Fprintf(c.Stderr, "logs kept in %s (up/up.log, routers/*.log, up-no-tokens/up.log, pgbouncer*/pgbouncer.log)\n", dir)
		default:
			removeDir()
		}
	}()

	rep, runErr := bench.RunSuite(ctx, cfg)
	if rep == nil {
		return runErr
	}
	if err := c.write(rep); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if n := rep.FailedCells(); n > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d cell(s) failed; their errors are in the notes", n)}
	}
	return nil
}

// suiteConfig is c's bench.SuiteConfig with the command's logger, the
// external cluster of the flags and the shardline binary defaulting to
// this one.
func (c *benchCommand) suiteConfig() (bench.SuiteConfig, error) {
	cfg := c.SuiteConfig
	cfg.Logger = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	cfg.Progress = c.Stderr
	if c.External {
		cfg.External = &bench.ExternalCluster{RouterDSN: c.Router, DirectDSN: c.Direct, DirectDSN2: c.Direct2, Tenant: c.Tenant, Tenant2: c.Tenant2, RouterPID: c.RouterPID}
		cfg.Init = map[initMode]string{initAuto: bench.InitAuto, initAlways: bench.InitAlways, initNever: bench.InitNever}[c.Init]
		return cfg, nil
	}
	if cfg.Shardline == "" {
		exe, err := os.Executable()
		if err != nil {
			return cfg, fmt.Errorf("find the shardline binary for the throwaway cluster and the routers: %w (pass --shardline)", err)
		}
		cfg.Shardline = exe
	}
	return cfg, nil
}

// render writes the outputs of the report in c.From (--from).
func (c *benchCommand) render() error {
	f, err := os.Open(c.From)
	if err != nil {
		return usageErr("--from: %v", err)
	}
	defer f.Close()
	rep, err := bench.ReadReport(f)
	if err != nil {
		return usageErr("--from %s: %v", c.From, err)
	}
	return c.write(rep)
}

// write prints rep on stdout and writes the report files asked for.
func (c *benchCommand) write(rep *bench.Report) error {
	var err error
	if c.Output == "json" {
		err = rep.WriteJSON(c.Stdout)
	} else {
		err = rep.WriteTable(c.Stdout)
	}
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path  string
		write func(io.Writer) error
	}{{c.ReportPath, rep.WriteMarkdown}, {c.JSONPath, rep.WriteJSON}} {
		if f.path == "" {
			continue
		}
		if err := writeFile(f.path, f.write); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fmt.Fprintf(c.Stderr, "report written to %s\n", f.path)
	}
	return nil
}

// writeFile creates path (and its directory) with what write writes.
func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// workDir returns the work directory (made traversable by the postgres
// user, who runs PostgreSQL and PgBouncer when we are root) and how to
// remove it.
func (c *benchCommand) workDir() (string, func(), error) {
	if c.Dir != "" {
		dir, err := filepath.Abs(c.Dir)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return "", nil, fmt.Errorf("--dir: %w", err)
		}
		// A directory the user named is theirs: remove only what we made.
		return dir, func() {
			os.RemoveAll(filepath.Join(dir, "up"))
			os.RemoveAll(filepath.Join(dir, "up-no-tokens"))
			os.RemoveAll(filepath.Join(dir, "routers"))
			os.RemoveAll(filepath.Join(dir, "pgbouncer"))
			os.RemoveAll(filepath.Join(dir, "pgbouncer-2shards"))
			os.RemoveAll(filepath.Join(dir, "pgbench"))
		}, nil
	}
	dir, err := os.MkdirTemp("", "shardline-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("work directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("work directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// joinInts is ns comma-separated.
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// shellJoin quotes args for a POSIX shell where needed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// initMode is the --init flag: a boolean flag (--init, --init=false) that
// also accepts "auto".
type initMode int

const (
	initAuto initMode = iota
	initAlways
	initNever
)

func (m *initMode) String() string {
	switch *m {
	case initAlways:
		return "true"
	case initNever:
		return "false"
	}
	return "auto"
}

func (m *initMode) Set(s string) error {
	if s == "auto" {
		*m = initAuto
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want auto, true or false")
	}
	if b {
		*m = initAlways
	} else {
		*m = initNever
	}
	return nil
}

func (m *initMode) IsBoolFlag() bool { return true }
