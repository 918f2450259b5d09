package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Target names that Prepare builds.
const (
	// TargetDirect is the first shard's primary, no proxy.
	TargetDirect = "direct"
	// TargetPgBouncer is the bench's own PgBouncer in front of that primary.
	TargetPgBouncer = "pgbouncer"
	// TargetRouter is the router with one tenant on the first shard: a
	// pass-through to the same primary.
	TargetRouter = "router"
	// TargetRouter2 is the router with the clients split between a tenant
	// on the first shard and one on the second.
	TargetRouter2 = "router-2shards"
)

// AllTargets returns the target names Prepare knows, in benchmark order. It
// returns a new slice on each call.
func AllTargets() []string {
	return []string{TargetDirect, TargetPgBouncer, TargetRouter, TargetRouter2}
}

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
	// cluster. Required unless External is set.
	Shardline string
	// ShardlineArgs go before "up" on its command line; ShardlineEnv, when
	// set, is its environment (tests run their own binary as shardline).
	ShardlineArgs []string
	ShardlineEnv  []string
	// External, when set, benchmarks that cluster instead of starting one.
	External *ExternalCluster
	// Targets are the names of the targets to build (see AllTargets);
	// empty means all. The first of direct and pgbouncer present are the
	// baselines of ratios.
	Targets []string
	// PoolSize is the server connections per shard of the router and
	// PgBouncer's default_pool_size (default DefaultPoolSize), so both
	// pool alike.
	PoolSize int
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

// Setup is the targets Prepare built and the processes behind them.
type Setup struct {
	Targets []Target
	// Baselines are the targets ratios divide by: direct and pgbouncer,
	// those present.
	Baselines []string
	// Environment has the machine and every version filled in.
	Environment Environment
	// RouterLog is the throwaway cluster's log file; empty otherwise.
	RouterLog string

	cluster *Cluster
	bouncer *PgBouncer
}

// Prepare starts what the targets need (a throwaway `shardline up` unless
// cfg.External is set, and a PgBouncer), creates the pgbench tables through
// the router for each tenant, checks that every target serves them, and
// returns the targets. On error it stops whatever it started. Close stops
// them.
func Prepare(ctx context.Context, cfg SetupConfig) (_ *Setup, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	progress := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, format+"\n", args...) }
	s := &Setup{Environment: ReadEnvironment()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	pb, err := NewPgbench(cfg.PgbenchPath, log)
	if err != nil {
		return nil, err
	}
	if s.Environment.Pgbench, err = pb.Version(ctx); err != nil {
		return nil, err
	}
	want := func(name string) bool { return slices.Contains(cfg.Targets, name) }

	// Where the router's tenants live and where direct connects.
	var (
		routerDSN, directDSN string
		tenant1, tenant2     string
		shard1, shard2       string
		routerPID            int
	)
	if ext := cfg.External; ext != nil {
		routerDSN, directDSN, tenant1, tenant2, routerPID = ext.RouterDSN, ext.DirectDSN, ext.Tenant, ext.Tenant2, ext.RouterPID
		shard1, shard2 = "the tenant's shard", "another shard"
		if tenant2 == "" && want(TargetRouter2) {
			log.Info("no second tenant given; leaving out the router-2shards target")
			cfg.Targets = slices.DeleteFunc(cfg.Targets, func(n string) bool { return n == TargetRouter2 })
		}
	} else {
		progress("starting a throwaway cluster: shardline up --shards 2 --replicas 0 in %s", cfg.Dir)
		s.cluster, err = StartCluster(ctx, ClusterConfig{
			Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv,
			Dir: filepath.Join(cfg.Dir, "up"), PoolSize: cfg.PoolSize, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
		s.RouterLog = s.cluster.LogPath()
		s.Environment.Shardline = BinaryRevision(cfg.Shardline)
		routerDSN, routerPID = s.cluster.RouterDSN, s.cluster.PID()
		shards, err := s.cluster.Shards(ctx)
		if err != nil {
			return nil, err
		}
		if len(shards) < 2 {
			return nil, fmt.Errorf("the throwaway cluster has %d shard(s), want 2", len(shards))
		}
		shard1, shard2, directDSN = shards[0].ID, shards[1].ID, shards[0].PrimaryDSN
		tenants, err := s.cluster.FindTenants(ctx, cfg.TenantPrefix, []string{shard1, shard2})
		if err != nil {
			return nil, err
		}
		tenant1, tenant2 = tenants[shard1], tenants[shard2]
		log.Info("tenants", "shard1", shard1, "tenant1", tenant1, "shard2", shard2, "tenant2", tenant2)
	}
	ep1 := Endpoint{DSN: routerDSN, Options: "-c shardline.tenant=" + tenant1}
	ep2 := Endpoint{DSN: routerDSN, Options: "-c shardline.tenant=" + tenant2}
	direct := Endpoint{DSN: directDSN}

	// pgbench tables through the router, on each tenant's shard.
	tenantEPs := []Endpoint{ep1}
	if want(TargetRouter2) {
		tenantEPs = append(tenantEPs, ep2)
	}
	for _, e := range tenantEPs {
		if err := initTables(ctx, pb, cfg, e, progress); err != nil {
			return nil, err
		}
	}
	if err := pb.Check(ctx, TargetDirect, direct); err != nil {
		if errors.Is(err, ErrNotInitialized) {
			return nil, fmt.Errorf("%w; the direct DSN must reach the database of the primary of the shard that holds tenant %s, where the router put the pgbench tables", err, tenant1)
		}
		return nil, err
	}
	if s.Environment.PostgreSQL, err = serverVersion(ctx, directDSN); err != nil {
		log.Warn("cannot read the PostgreSQL version", "err", err)
	}

	if want(TargetDirect) {
		s.Targets = append(s.Targets, Target{
			Name:        TargetDirect,
			Description: fmt.Sprintf("PostgreSQL directly: the primary of shard %s, no proxy", shard1),
			Endpoints:   []Endpoint{direct},
		})
	}
	if want(TargetPgBouncer) {
		progress("starting PgBouncer (transaction mode, pool size %d) in front of shard %s's primary", cfg.PoolSize, shard1)
		b, err := StartPgBouncer(ctx, PgBouncerConfig{
			Path: cfg.PgBouncerPath, Dir: filepath.Join(cfg.Dir, "pgbouncer"), Server: directDSN,
			PoolSize: cfg.PoolSize, MaxClientConn: cfg.MaxClientConn, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("start pgbouncer: %w", err)
		}
		s.bouncer = b
		s.Environment.PgBouncer = b.Version()
		t := Target{
			Name: TargetPgBouncer,
			Description: fmt.Sprintf("%s, pool_mode=transaction, default_pool_size=%d, in front of the primary of shard %s",
				b.Version(), b.PoolSize(), shard1),
			Endpoints: []Endpoint{b.Endpoint()},
			ProxyPID:  b.PID(),
		}
		if !b.PreparedStatements() {
			t.Unsupported = map[string]string{WorkloadSelectPrepared: b.Version() +
				" in transaction mode does not keep named prepared statements across server connections (pgbench -M prepared aborts)"}
		}
		if err := pb.Check(ctx, TargetPgBouncer, t.Endpoints[0]); err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets, t)
	}
	if want(TargetRouter) {
		s.Targets = append(s.Targets, Target{
			Name: TargetRouter,
			Description: fmt.Sprintf("Shardline router, every client tenant %s (shard %s) by startup option: pass-through to one shard, pool size %d per shard",
				tenant1, shard1, cfg.PoolSize),
			Endpoints: []Endpoint{ep1},
			ProxyPID:  routerPID,
		})
	}
	if want(TargetRouter2) {
		s.Targets = append(s.Targets, Target{
			Name: TargetRouter2,
			Description: fmt.Sprintf("Shardline router, two pgbench processes at once, half the clients each: tenant %s (shard %s) and tenant %s (shard %s), by startup option",
				tenant1, shard1, tenant2, shard2),
			Endpoints: []Endpoint{ep1, ep2},
			ProxyPID:  routerPID,
		})
	}
	for _, t := range s.Targets {
		if t.Name == TargetRouter || t.Name == TargetRouter2 {
			for _, e := range t.Endpoints {
				if err := pb.Check(ctx, t.Name, e); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, b := range []string{TargetDirect, TargetPgBouncer} {
		if want(b) {
			s.Baselines = append(s.Baselines, b)
		}
	}
	return s, nil
}

// fill checks cfg and sets its defaults.
func (cfg *SetupConfig) fill() error {
	if cfg.Dir == "" {
		return fmt.Errorf("%w: setup: Dir is required", ErrInvalidConfig)
	}
	if len(cfg.Targets) == 0 {
		cfg.Targets = AllTargets()
	}
	for _, t := range cfg.Targets {
		if !slices.Contains(AllTargets(), t) {
			return fmt.Errorf("%w: target %q: want one of %s", ErrInvalidConfig, t, strings.Join(AllTargets(), ", "))
		}
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
	switch {
	case cfg.PoolSize < 1:
		return fmt.Errorf("%w: pool size %d: want at least 1", ErrInvalidConfig, cfg.PoolSize)
	case cfg.Scale < 1:
		return fmt.Errorf("%w: scale %d: want at least 1", ErrInvalidConfig, cfg.Scale)
	case !slices.Contains([]string{InitAuto, InitAlways, InitNever}, cfg.Init):
		return fmt.Errorf("%w: init %q: want auto, always or never", ErrInvalidConfig, cfg.Init)
	}
	if ext := cfg.External; ext != nil {
		if ext.RouterDSN == "" || ext.DirectDSN == "" || ext.Tenant == "" {
			return fmt.Errorf("%w: external cluster: router DSN, direct DSN and tenant are required", ErrInvalidConfig)
		}
		if ext.Tenant2 == ext.Tenant {
			return fmt.Errorf("%w: external cluster: the second tenant must differ from the first", ErrInvalidConfig)
		}
	} else if cfg.Shardline == "" {
		return fmt.Errorf("%w: setup: the shardline binary is required to start a cluster", ErrInvalidConfig)
	}
	return os.MkdirAll(cfg.Dir, 0o755)
}

// initTables runs pgbench -i through the router endpoint e as cfg.Init
// says (a throwaway cluster always) and checks the tables serve.
func initTables(ctx context.Context, pb *Pgbench, cfg SetupConfig, e Endpoint, progress func(string, ...any)) error {
	name := "router (" + strings.TrimPrefix(e.Options, "-c ") + ")"
	mode := cfg.Init
	if cfg.External == nil {
		mode = InitAlways
	}
	if mode == InitAuto {
		err := pb.Check(ctx, name, e)
		if !errors.Is(err, ErrNotInitialized) {
			return err
		}
	}
	if mode != InitNever {
		progress("creating the pgbench tables through the router: pgbench -i -s %d with PGOPTIONS='%s'", cfg.Scale, e.Options)
		start := time.Now()
		if err := pb.Init(ctx, name, e, cfg.Scale); err != nil {
			return err
		}
		cfg.Logger.Info("pgbench tables created", "endpoint", name, "elapsed", time.Since(start))
	}
	return pb.Check(ctx, name, e)
}

// serverVersion returns "PostgreSQL " and the server_version the server
// reports at login.
func serverVersion(ctx context.Context, dsn string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	delete(pc.RuntimeParams, "options")
	c, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return "PostgreSQL " + c.ParameterStatus("server_version"), nil
}

// Close stops PgBouncer and the throwaway cluster, if started. It returns
// the errors of both; safe to call more than once.
func (s *Setup) Close() error {
	var errs []error
	if s.bouncer != nil {
		errs = append(errs, s.bouncer.Close())
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Close())
	}
	return errors.Join(errs...)
}

// Alive returns an error wrapping ErrProcessGone when PgBouncer or the
// throwaway cluster has exited.
func (s *Setup) Alive() error {
	var errs []error
	if s.bouncer != nil {
		errs = append(errs, s.bouncer.Err())
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Err())
	}
	return errors.Join(errs...)
}
