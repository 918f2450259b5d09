package bench

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Query modes accepted in Config.Modes; they are pgbench's -M values.
const (
	ModeSimple   = "simple"
	ModeExtended = "extended"
	ModePrepared = "prepared"
)

// Defaults that Config.WithDefaults fills in.
const (
	DefaultClients  = 8
	DefaultDuration = 10 * time.Second
	DefaultRounds   = 3
	DefaultWorkload = WorkloadSelectOnly
)

// DefaultModes is the Modes that Config.WithDefaults fills in when none are
// given. It returns a new slice on each call.
func DefaultModes() []string { return []string{ModeSimple, ModePrepared} }

// Target is one server to benchmark.
type Target struct {
	// Name labels the target in progress lines and the report, for example
	// "direct" or "router". Names are unique within a Config.
	Name string
	// DSN is a libpq connection string or URI; pgbench receives it as its
	// dbname argument, so anything libpq accepts works.
	DSN string
	// Env holds extra KEY=VALUE environment entries for pgbench, added
	// after (and so winning over) the process environment. The router
	// target uses it to pick the tenant:
	// PGOPTIONS=-c shardline.tenant=t1.
	Env []string
}

// Config says what Run measures. The zero value of each field means its
// default (see WithDefaults).
type Config struct {
	// Targets are benchmarked in this order within each round. The first
	// is the baseline that the report's ratios divide by.
	Targets []Target
	// Modes are pgbench query modes (-M): "simple", "extended",
	// "prepared". Each mode is measured over all rounds before the next.
	Modes []string
	// Clients is pgbench's -c; threads (-j) are min(Clients, 2).
	Clients int
	// Duration is pgbench's -T for each run; it must be whole seconds.
	Duration time.Duration
	// Rounds is how many times each target runs per mode; the report
	// gives medians over rounds.
	Rounds int
	// Workload names a pgbench builtin script: "select-only" (-S),
	// "simple-update" (-N) or "tpcb-like".
	Workload string
	// PgbenchPath is the pgbench binary. Empty means pgbench on PATH, then
	// the newest /usr/lib/postgresql/*/bin/pgbench.
	PgbenchPath string
	// Logger receives debug lines about each pgbench invocation. Nil
	// discards them.
	Logger *slog.Logger
	// Progress receives one line per finished run. Nil discards them.
	Progress io.Writer
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Modes) == 0 {
		c.Modes = DefaultModes()
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.Workload == "" {
		c.Workload = DefaultWorkload
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
	if len(c.Modes) == 0 {
		return fmt.Errorf("%w: no query modes", ErrInvalidConfig)
	}
	for i, m := range c.Modes {
		if !slices.Contains([]string{ModeSimple, ModeExtended, ModePrepared}, m) {
			return fmt.Errorf("%w: query mode %q: want simple, extended or prepared", ErrInvalidConfig, m)
		}
		if slices.Contains(c.Modes[:i], m) {
			return fmt.Errorf("%w: query mode %q listed twice", ErrInvalidConfig, m)
		}
	}
	if c.Clients < 1 {
		return fmt.Errorf("%w: clients %d: want at least 1", ErrInvalidConfig, c.Clients)
	}
	if c.Duration < time.Second || c.Duration%time.Second != 0 {
		return fmt.Errorf("%w: duration %v: want whole seconds, at least 1s (pgbench -T)", ErrInvalidConfig, c.Duration)
	}
	if c.Rounds < 1 {
		return fmt.Errorf("%w: rounds %d: want at least 1", ErrInvalidConfig, c.Rounds)
	}
	if _, err := workloadArgs(c.Workload); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// threads is pgbench's -j for c: min(Clients, 2).
func (c Config) threads() int { return min(c.Clients, 2) }

func (t Target) validate() error {
	if t.Name == "" {
		return fmt.Errorf("empty name")
	}
	if strings.ContainsFunc(t.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("name %q holds spaces or control characters", t.Name)
	}
	if t.DSN == "" {
		return fmt.Errorf("%s: empty DSN", t.Name)
	}
	if strings.HasPrefix(t.DSN, "-") {
		// pgbench would read it as an option.
		return fmt.Errorf("%s: DSN starts with '-'", t.Name)
	}
	for _, kv := range t.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%s: env entry %q is not KEY=VALUE", t.Name, kv)
		}
	}
	return nil
}
