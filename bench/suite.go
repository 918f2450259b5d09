package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"
)

// SuiteConfig is a whole benchmark, as `shardline bench` runs it: the
// targets that Prepare builds and the matrix that Run measures on them.
// Its fields are taken as given, a zero one is not a default (a command's
// flags give the defaults: DefaultSuiteConfig has them).
type SuiteConfig struct {
	// Targets are the names of the targets to build (see AllTargets);
	// empty means all.
	Targets []string
	// Workloads are the workloads to measure (see Workloads and
	// ReplicaWorkloads), each at every client count.
	Workloads []string
	// Clients are the pgbench client counts, a cell each; the idle
	// workload alone needs none.
	Clients []int
	// Rounds are the runs per target and cell.
	Rounds int
	// Duration is each pgbench run's length (-T), whole seconds.
	Duration time.Duration
	// Warmup is the length of one unreported select-simple run per target
	// first, whole seconds; 0 for none.
	Warmup time.Duration
	// MaxThreads bounds each run's pgbench threads (see Config.MaxThreads).
	MaxThreads int
	// IdleConns are the connections the idle workload holds open; they
	// must fit under PgBouncer's max_client_conn (DefaultMaxClientConn)
	// with idleConnsHeadroom to spare.
	IdleConns int
	// PoolSize and Scale are SetupConfig's, at least 1.
	PoolSize int
	Scale    int

	// Dir is the work directory (see SetupConfig.Dir); pgbench's logs go
	// to its pgbench folder. RunSuite requires it; Validate does not look
	// at it, so a command can check its settings before making it.
	Dir string
	// Shardline, ShardlineArgs and ShardlineEnv run the throwaway cluster
	// and the routers (see SetupConfig); Shardline is required unless
	// External is set.
	Shardline     string
	ShardlineArgs []string
	ShardlineEnv  []string
	// External, when set, benchmarks that cluster instead of a throwaway
	// one; Init then decides pgbench -i (see SetupConfig.Init).
	External *ExternalCluster
	Init     string
	// PgbenchPath and PgBouncerPath are the binaries; empty finds them.
	PgbenchPath   string
	PgBouncerPath string
	// Command is the command line the report names; empty for none.
	Command string
	// Logger receives the bench's logs; nil discards them.
	Logger *slog.Logger
	// Progress receives a line per setup step and per run; nil discards
	// them.
	Progress io.Writer
}

// idleConnsHeadroom is how many of PgBouncer's max_client_conn the idle
// workload leaves to other clients (pgbench's checks, the warm-up).
const idleConnsHeadroom = 100

// DefaultSuiteConfig returns a SuiteConfig with every setting at its
// default: every target and default workload, DefaultClients, and the
// Default* constants. The paths and Dir are empty.
func DefaultSuiteConfig() SuiteConfig {
	return SuiteConfig{
		Targets:    DefaultTargets(),
		Workloads:  Workloads(),
		Clients:    DefaultClients(),
		Rounds:     DefaultRounds,
		Duration:   DefaultDuration,
		Warmup:     DefaultWarmup,
		MaxThreads: DefaultMaxThreads,
		IdleConns:  DefaultIdleConns,
		PoolSize:   DefaultPoolSize,
		Scale:      1,
	}
}

// Validate checks c as given, before anything starts: the matrix (as
// Config.Validate does, but for the targets, not built yet), the targets'
// names, the sizes, and what an external cluster needs. Every error wraps
// ErrInvalidConfig and says which setting is wrong and what it wants.
func (c SuiteConfig) Validate() error {
	if err := c.matrix().validateMatrix(); err != nil {
		return err
	}
	if most := DefaultMaxClientConn - idleConnsHeadroom - 1; c.IdleConns > most {
		return fmt.Errorf("%w: idle connections %d: at most %d (PgBouncer's max_client_conn is %d)", ErrInvalidConfig, c.IdleConns, most, DefaultMaxClientConn)
	}
	return c.setup().Validate()
}

// setup is the SetupConfig that c asks Prepare for.
func (c SuiteConfig) setup() SetupConfig {
	return SetupConfig{
		Dir:           c.Dir,
		Shardline:     c.Shardline,
		ShardlineArgs: c.ShardlineArgs,
		ShardlineEnv:  c.ShardlineEnv,
		External:      c.External,
		Targets:       c.Targets,
		Workloads:     c.Workloads,
		PoolSize:      c.PoolSize,
		MaxClients:    slices.Max(append([]int{0}, c.Clients...)),
		PgBouncerPath: c.PgBouncerPath,
		PgbenchPath:   c.PgbenchPath,
		Scale:         c.Scale,
		Init:          c.Init,
		Logger:        c.Logger,
		Progress:      c.Progress,
	}
}

// matrix is the Config that c asks Run for, without the targets.
func (c SuiteConfig) matrix() Config {
	cfg := Config{
		Workloads:   c.Workloads,
		Clients:     c.Clients,
		MaxThreads:  c.MaxThreads,
		Duration:    c.Duration,
		Rounds:      c.Rounds,
		IdleConns:   c.IdleConns,
		Warmup:      c.Warmup,
		PgbenchPath: c.PgbenchPath,
		Command:     c.Command,
		Logger:      c.Logger,
		Progress:    c.Progress,
	}
	if c.Dir != "" {
		cfg.WorkDir = filepath.Join(c.Dir, "pgbench")
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = -1 // none
	}
	return cfg
}

// RunSuite validates c, builds the targets (Prepare), measures the matrix
// on them (Run) and stops what Prepare started. It returns Run's report and
// error: a nil report only with an error (an invalid c, wrapping
// ErrInvalidConfig; a target that could not be built; a missing pgbench),
// else the report of the runs made, with an error when Run ended early. A
// process of the setup that died during the run is logged, with its log
// files, at error level.
func RunSuite(ctx context.Context, c SuiteConfig) (*Report, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	setup, err := Prepare(ctx, c.setup())
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := setup.Close(); cerr != nil {
			log.Warn("stopping what the bench started", "err", cerr)
		}
	}()
	cfg := c.matrix()
	cfg.Targets, cfg.Baselines, cfg.Environment = setup.Targets, setup.Baselines, setup.Environment
	log.Info("benchmark starting", "targets", len(cfg.Targets), "workloads", cfg.Workloads, "clients", cfg.Clients,
		"rounds", cfg.Rounds, "duration", cfg.Duration)
	rep, err := Run(ctx, cfg)
	if rep == nil {
		return nil, err
	}
	if aerr := setup.Alive(); aerr != nil {
		log.Error("a process the bench started died during the run", "err", aerr, "cluster_log", setup.ClusterLog,
			"router_logs", setup.RouterLogs, "no_tokens_cluster_log", setup.NoTokensLog)
	}
	return rep, err
}
