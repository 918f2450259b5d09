package bench

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/shardline/shardline"
)

// Init modes of SetupConfig.Init for an external cluster.
const (
	// InitAuto runs pgbench -i through the router only for tenants whose
	// tables are missing.
	InitAuto = "auto"
	// InitAlways drops and refills the pgbench tables first.
	InitAlways = "always"
	// InitNever never runs pgbench -i.
	InitNever = "never"
)

// ExternalCluster is a running Shardline cluster to benchmark instead of a
// throwaway one.
type ExternalCluster struct {
	// RouterDSN reaches the router. Required.
	RouterDSN string
	// DirectDSN reaches the primary of the shard that holds Tenant; the
	// direct and PgBouncer targets use it. Required.
	DirectDSN string
	// Tenant is the tenant of the router target. Required.
	Tenant string
	// Tenant2 is a tenant on another shard, for the router-2shards target;
	// empty leaves that target out.
	Tenant2 string
	// DirectDSN2 reaches the primary of Tenant2's shard, for the
	// direct-2shards target; empty leaves that target out. It needs
	// Tenant2.
	DirectDSN2 string
	// RouterPID is the router's process id, for its CPU time; 0 reports
	// the router's CPU and memory as n/a.
	RouterPID int
}

// SetupConfig says how Prepare builds the targets.
type SetupConfig struct {
	// Dir holds the throwaway cluster, PgBouncer's files and the logs.
	// Required.
	Dir string
	// Shardline is the shardline binary that runs `up` for a throwaway
	// cluster, and `router` for the router targets. Required unless
	// External is set.
	Shardline string
	// ShardlineArgs go before "up" and "router" on their command lines;
	// ShardlineEnv, when set, is their environment (tests run their own
	// binary as shardline).
	ShardlineArgs []string
	ShardlineEnv  []string
	// External, when set, benchmarks that cluster instead of starting one.
	External *ExternalCluster
	// Targets are the names of the targets to build (see AllTargets);
	// empty means all. The first of direct and pgbouncer present are the
	// baselines of ratios.
	Targets []string
	// Workloads are the workloads that will run (default Workloads()).
	// The Targets are built only when a default workload is among them;
	// WorkloadReplicaRead adds router-primary and router-replica (baseline
	// router-primary), WorkloadWriteToken router-no-tokens and
	// router-tokens (baseline router-no-tokens). With either, the
	// throwaway cluster has a streaming replica per shard; write-token
	// starts a second one, with --no-write-tokens. Neither works with an
	// External cluster.
	Workloads []string
	// PoolSize is PgBouncer's default_pool_size and the router target's
	// server connections per shard (default DefaultPoolSize), so both
	// pool alike; the router-2shards target's router has
	// max(1, PoolSize/2) per shard, the same in all over its two shards.
	PoolSize int
	// MaxClients is the most clients a run opens, the largest of
	// Config.Clients: direct's clients connect to the first shard's
	// primary besides the pools, and the throwaway cluster's
	// max_connections is raised above PostgreSQL's 300 when both need
	// more (see maxConnections). 0 leaves it alone.
	MaxClients int
	// MaxClientConn is PgBouncer's max_client_conn (default
	// DefaultMaxClientConn); it must exceed the idle workload's
	// connections.
	MaxClientConn int
	// PgBouncerPath and PgbenchPath are the binaries; empty finds them.
	PgBouncerPath string
	PgbenchPath   string
	// Scale is pgbench -i's scale factor (default 1).
	Scale int
	// Init decides pgbench -i for an external cluster: InitAuto (the
	// default), InitAlways or InitNever. A throwaway cluster is always
	// initialized.
	Init string
	// TenantPrefix names the tenants looked up on a throwaway cluster
	// (default "bench": bench1, bench2, ...).
	TenantPrefix string
	Logger       *slog.Logger
	// Progress receives a line per setup step. Nil discards them.
	Progress io.Writer
}

// pgDefaultMaxConnections is max_connections of a `shardline up` cluster
// unless --max-connections says otherwise.
const pgDefaultMaxConnections = 300

// maxConnections returns the throwaway cluster's max_connections: 0 (up's
// default, 300) when that holds the first shard's primary at its busiest:
// direct's cfg.MaxClients while every pool to that primary is full (up's
// router, PgBouncer, the router process, the half-size pools of
// pgbouncer-2shards and router-2shards, and both half-size pools of
// router-2shards-1server, and the TLS targets' pools when they run), plus
// headroom for the replica monitors and pgbench's own connection. Else
// enough for that.
func (cfg *SetupConfig) maxConnections() int {
	const headroom = 20
	need := cfg.MaxClients + 3*cfg.PoolSize + 4*max(1, cfg.PoolSize/2) + headroom
	for _, t := range cfg.Targets {
		if t == TargetPgBouncerTLS || t == TargetRouterTLS {
			need += cfg.PoolSize
		}
	}
	if need <= pgDefaultMaxConnections {
		return 0
	}
	return need
}

// fill checks that Dir is set, sets cfg's defaults, validates it and
// creates Dir.
func (cfg *SetupConfig) fill() error {
	if cfg.Dir == "" {
		return fmt.Errorf("%w: setup: Dir is required", ErrInvalidConfig)
	}
	if len(cfg.Targets) == 0 {
		cfg.Targets = DefaultTargets()
	}
	if len(cfg.Workloads) == 0 {
		cfg.Workloads = Workloads()
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.Scale == 0 {
		cfg.Scale = 1
	}
	if cfg.Init == "" {
		cfg.Init = InitAuto
	}
	if cfg.TenantPrefix == "" {
		cfg.TenantPrefix = "bench"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return os.MkdirAll(cfg.Dir, 0o755)
}

// Validate checks cfg as given, but for Dir, which Prepare checks: an
// empty Targets or Workloads is every one, an empty Init is InitAuto, and
// zero sizes are errors (Prepare fills in the defaults first). Every error
// wraps ErrInvalidConfig.
func (cfg SetupConfig) Validate() error {
	for _, w := range cfg.Workloads {
		if _, err := LookupWorkload(w); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if ownTargets(w) && cfg.External != nil {
			return fmt.Errorf("%w: workload %s needs the throwaway cluster (it starts the clusters it compares), not an external one", ErrInvalidConfig, w)
		}
	}
	for _, t := range cfg.Targets {
		if !slices.Contains(AllTargets(), t) {
			return fmt.Errorf("%w: target %q: want some of %s", ErrInvalidConfig, t, strings.Join(AllTargets(), ", "))
		}
	}
	switch {
	case cfg.PoolSize < 1:
		return fmt.Errorf("%w: pool size %d: want at least 1", ErrInvalidConfig, cfg.PoolSize)
	case cfg.Scale < 1:
		return fmt.Errorf("%w: scale %d: want at least 1", ErrInvalidConfig, cfg.Scale)
	case cfg.Init != "" && !slices.Contains([]string{InitAuto, InitAlways, InitNever}, cfg.Init):
		return fmt.Errorf("%w: init %q: want auto, always or never", ErrInvalidConfig, cfg.Init)
	}
	if cfg.External != nil {
		if err := cfg.External.validate(); err != nil {
			return fmt.Errorf("%w: external cluster: %w", ErrInvalidConfig, err)
		}
	} else if cfg.Shardline == "" {
		return fmt.Errorf("%w: setup: the shardline binary is required to start a cluster", ErrInvalidConfig)
	}
	return nil
}

// validate checks that ext has what an external cluster requires, and
// that its tenants are tenant names on two shards.
func (ext *ExternalCluster) validate() error {
	switch {
	case ext.RouterDSN == "":
		return fmt.Errorf("the router DSN is required")
	case ext.Tenant == "":
		return fmt.Errorf("the tenant of the router target is required")
	case ext.DirectDSN == "":
		return fmt.Errorf("the direct DSN is required: the DSN of the primary of the shard that holds tenant %s", ext.Tenant)
	case ext.Tenant2 == ext.Tenant:
		return fmt.Errorf("the second tenant must differ from the first")
	case ext.DirectDSN2 != "" && ext.Tenant2 == "":
		return fmt.Errorf("the second direct DSN needs the second tenant: the tenant on the shard whose primary it reaches")
	}
	for _, t := range []string{ext.Tenant, ext.Tenant2} {
		if t == "" {
			continue
		}
		if err := shardline.ValidateTenant(t); err != nil {
			return fmt.Errorf("tenant %q: %w", t, err)
		}
	}
	return nil
}
