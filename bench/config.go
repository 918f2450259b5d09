package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Defaults that Config.WithDefaults fills in.
const (
	DefaultDuration   = 10 * time.Second
	DefaultRounds     = 3
	DefaultIdleConns  = 1000
	DefaultMaxThreads = 2
	DefaultWarmup     = 2 * time.Second
	DefaultIdleSample = 2 * time.Second
)

// DefaultClients is the Clients that WithDefaults fills in. It returns a new
// slice on each call.
func DefaultClients() []int { return []int{1, 8, 32, 256} }

// Endpoint is one place a pgbench process connects to.
type Endpoint struct {
	// DSN is a libpq connection string or URI; pgbench receives it as its
	// dbname argument, so anything libpq accepts works.
	DSN string `json:"-"`
	// Options is the libpq options string (PGOPTIONS), for example
	// "-c shardline.tenant=t1"; empty for none. The idle workload sends it
	// as the startup parameter "options".
	Options string `json:"options,omitempty"`
}

// Target is one server, or one way through a proxy, to benchmark.
type Target struct {
	// Name labels the target in progress lines and reports, for example
	// "direct", "pgbouncer" or "router". Names are unique within a Config.
	Name string
	// Description says what the target is, for reports.
	Description string
	// Endpoints are where the clients go. With more than one, each run
	// starts one pgbench per endpoint at the same time, the clients (and
	// threads) split evenly between them, and sums their transactions; a
	// client count below len(Endpoints) is "n/a" for the target.
	Endpoints []Endpoint
	// ProxyPID is the process whose CPU time per transaction and memory
	// per idle connection are reported; 0 means none (PostgreSQL
	// directly), and those figures are n/a.
	ProxyPID int
	// Process says, for reports, what runs as ProxyPID, for example
	// "shardline router --pool-size 20"; empty for none.
	Process string
	// Pool says, for reports, which server connections the proxy keeps
	// for the target, for example "20 to shard s1"; empty for none.
	Pool string
	// Unsupported maps a workload name to why the target cannot run it;
	// such cells are reported as unsupported and not run.
	Unsupported map[string]string
	// Workloads, when not empty, are the only workloads the target runs:
	// it is left out of every other workload's cells. Empty means every
	// workload without OwnTargets; those run only on the targets that name
	// them here.
	Workloads []string
	// ConnectsServers is set when every client connection starts a
	// server process (PostgreSQL directly). Starting hundreds takes
	// seconds on a small machine and pgbench's -T counts that time, so the
	// target's runs at more than manyServersClients clients last at least
	// manyServersDuration (RunResult.DurationSeconds says how long).
	ConnectsServers bool
	// MetricsURL is the router's Prometheus endpoint
	// (http://127.0.0.1:6490/metrics); when set, each run reads the
	// router's counters before and after (RunResult.Router). Empty for
	// none.
	MetricsURL string
	// Ready, when set, is called before each of the target's pgbench runs
	// (the warm-up too), outside the measured window, and waits until the
	// target can serve as it is meant to (a replica caught up after another
	// cell's writes); an error fails the run.
	Ready func(ctx context.Context) error
}

// runs reports whether the target runs workload w.
func (t Target) runs(w Workload) bool {
	if len(t.Workloads) == 0 {
		return !w.OwnTargets
	}
	return slices.Contains(t.Workloads, w.Name)
}

// Config says what Run measures: every workload at every client count, each
// cell in Rounds rounds that alternate the targets (A B C B C A ...).
type Config struct {
	// Targets are benchmarked in this order in the first round; each
	// later round starts one place further (see roundOrder).
	Targets []Target
	// Baselines name the targets that the report's ratios divide by
	// ("direct", "pgbouncer"); names not among Targets are ignored. A
	// cell's ratios divide by the baselines that run in it (the replica
	// workloads have baselines of their own). Nil means the first target.
	Baselines []string
	// Workloads are workload names (see Workloads); each is measured at
	// every client count before the next.
	Workloads []string
	// Clients are pgbench client counts (-c), each a cell of the matrix.
	// The idle workload ignores them.
	Clients []int
	// MaxThreads bounds pgbench's threads (-j): min(clients, MaxThreads),
	// split between the endpoints of a target.
	MaxThreads int
	// Duration is pgbench's -T for each run; it must be whole seconds.
	Duration time.Duration
	// Rounds is how many times each target runs per cell; reports give
	// medians over rounds.
	Rounds int
	// IdleConns is how many connections the idle workload holds open.
	IdleConns int
	// Warmup is the length of one select-simple run per target before the
	// matrix, not reported; it fills caches and proxies' server pools.
	// Negative means none.
	Warmup time.Duration
	// IdleSample is how long each proxy's CPU time is sampled while no
	// client works, before the matrix: the background work (for a
	// router: the placement watch, replica sampling, timers; for a
	// `shardline up` process also etcd and the manager) that the CPU time
	// per transaction includes. Negative means none.
	IdleSample time.Duration
	// WorkDir holds pgbench's per-transaction logs while they are read;
	// empty means a new directory under os.TempDir, removed afterwards.
	WorkDir string
	// Command is the command line reported as the one that produced the
	// report; empty for none.
	Command string
	// Environment is the machine and versions to report; Run fills in
	// pgbench's version and the load average at the end.
	Environment Environment
	// PgbenchPath is the pgbench binary. Empty means pgbench on PATH, then
	// the newest /usr/lib/postgresql/*/bin/pgbench.
	PgbenchPath string
	// Logger receives debug lines about each invocation. Nil discards.
	Logger *slog.Logger
	// Progress receives one line per finished run. Nil discards.
	Progress io.Writer
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Workloads) == 0 {
		c.Workloads = Workloads()
	}
	if len(c.Clients) == 0 {
		c.Clients = DefaultClients()
	}
	if c.MaxThreads == 0 {
		c.MaxThreads = DefaultMaxThreads
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.IdleConns == 0 {
		c.IdleConns = DefaultIdleConns
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.IdleSample == 0 {
		c.IdleSample = DefaultIdleSample
	}
	if len(c.Baselines) == 0 && len(c.Targets) > 0 {
		c.Baselines = []string{c.Targets[0].Name}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Validate checks c as given (call WithDefaults first to fill zero fields).
// Every error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	if len(c.Targets) == 0 {
		return fmt.Errorf("%w: no targets", ErrInvalidConfig)
	}
	seen := make(map[string]bool, len(c.Targets))
	for i, t := range c.Targets {
		if err := t.validate(); err != nil {
			return fmt.Errorf("%w: target %d: %w", ErrInvalidConfig, i, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: target name %q used twice", ErrInvalidConfig, t.Name)
		}
		seen[t.Name] = true
	}
	if err := c.validateMatrix(); err != nil {
		return err
	}
	for _, w := range c.Workloads {
		wl, _ := LookupWorkload(w)
		if !slices.ContainsFunc(c.Targets, func(t Target) bool { return t.runs(wl) }) {
			return fmt.Errorf("%w: workload %q: no target runs it", ErrInvalidConfig, w)
		}
	}
	return nil
}

// validateMatrix checks the fields of c that say what to measure and how,
// all but the targets and baselines: what Validate checks of a Config
// whose targets are not built yet.
func (c Config) validateMatrix() error {
	if len(c.Workloads) == 0 {
		return fmt.Errorf("%w: no workloads", ErrInvalidConfig)
	}
	for i, w := range c.Workloads {
		if _, err := LookupWorkload(w); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if slices.Contains(c.Workloads[:i], w) {
			return fmt.Errorf("%w: workload %q listed twice", ErrInvalidConfig, w)
		}
	}
	if len(c.Clients) == 0 && c.needsClients() {
		return fmt.Errorf("%w: no client counts", ErrInvalidConfig)
	}
	for i, n := range c.Clients {
		if n < 1 || n > 10000 {
			return fmt.Errorf("%w: clients %d: want 1 to 10000", ErrInvalidConfig, n)
		}
		if slices.Contains(c.Clients[:i], n) {
			return fmt.Errorf("%w: clients %d listed twice", ErrInvalidConfig, n)
		}
	}
	if c.MaxThreads < 1 {
		return fmt.Errorf("%w: threads %d: want at least 1", ErrInvalidConfig, c.MaxThreads)
	}
	if c.Duration < time.Second || c.Duration%time.Second != 0 {
		return fmt.Errorf("%w: duration %v: want whole seconds, at least 1s (pgbench -T)", ErrInvalidConfig, c.Duration)
	}
	if c.Warmup > 0 && c.Warmup%time.Second != 0 {
		return fmt.Errorf("%w: warmup %v: want whole seconds", ErrInvalidConfig, c.Warmup)
	}
	if c.Rounds < 1 {
		return fmt.Errorf("%w: rounds %d: want at least 1", ErrInvalidConfig, c.Rounds)
	}
	if c.IdleConns < 1 {
		return fmt.Errorf("%w: idle connections %d: want at least 1", ErrInvalidConfig, c.IdleConns)
	}
	return nil
}

// needsClients reports whether a workload other than idle is configured.
func (c Config) needsClients() bool {
	for _, w := range c.Workloads {
		if w != WorkloadIdle {
			return true
		}
	}
	return false
}

// split divides clients and threads between n endpoints: the first ones get
// the remainder. Every endpoint gets at least one thread and no more
// threads than clients.
func split(clients, maxThreads, n int) (perClients, perThreads []int) {
	threads := min(clients, maxThreads)
	for i := range n {
		c := clients / n
		if i < clients%n {
			c++
		}
		t := threads / n
		if i < threads%n {
			t++
		}
		perClients = append(perClients, c)
		perThreads = append(perThreads, max(1, min(t, c)))
	}
	return perClients, perThreads
}

func (t Target) validate() error {
	if t.Name == "" {
		return fmt.Errorf("empty name")
	}
	if strings.ContainsFunc(t.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("name %q holds spaces or control characters", t.Name)
	}
	if len(t.Endpoints) == 0 {
		return fmt.Errorf("%s: no endpoints", t.Name)
	}
	for _, e := range t.Endpoints {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	for _, w := range t.Workloads {
		if _, err := LookupWorkload(w); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	if t.MetricsURL != "" && !strings.HasPrefix(t.MetricsURL, "http://") && !strings.HasPrefix(t.MetricsURL, "https://") {
		return fmt.Errorf("%s: metrics URL %q is not http(s)", t.Name, t.MetricsURL)
	}
	if t.ProxyPID < 0 {
		return fmt.Errorf("%s: negative proxy pid", t.Name)
	}
	return nil
}

func (e Endpoint) validate() error {
	if e.DSN == "" {
		return fmt.Errorf("empty DSN")
	}
	if strings.HasPrefix(e.DSN, "-") {
		// pgbench would read it as an option.
		return fmt.Errorf("DSN starts with '-'")
	}
	if strings.ContainsAny(e.Options, "\x00\n") {
		return fmt.Errorf("options hold a NUL or newline")
	}
	return nil
}

// env is the environment entries a pgbench for e adds.
func (e Endpoint) env() []string {
	if e.Options == "" {
		return nil
	}
	return []string{"PGOPTIONS=" + e.Options}
}
