package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Setup is the targets Prepare built and the processes behind them.
type Setup struct {
	Targets []Target
	// Baselines are the targets ratios divide by: direct and pgbouncer,
	// those present (else the first default target), and router-primary
	// and router-no-tokens for the replica workloads.
	Baselines []string
	// Environment has the machine and every version filled in.
	Environment Environment
	// ClusterLog is the throwaway cluster's log file (up.log); empty
	// otherwise.
	ClusterLog string
	// RouterLogs are the log files of the router processes the bench
	// started, one per router target.
	RouterLogs []string
	// NoTokensLog is the log file of the second throwaway cluster (with
	// --no-write-tokens, for the write-token workload); empty otherwise.
	NoTokensLog string

	cluster  *Cluster
	noTokens *Cluster
	routers  []*RouterProcess
	bouncers []*PgBouncer
}

// Prepare starts what the targets need (a throwaway `shardline up` unless
// cfg.External is set, with a `shardline router` process against its etcd
// for each router target, a second cluster with --no-write-tokens for the
// write-token workload, and a PgBouncer), creates the pgbench tables
// through the cluster's router for each tenant, waits for the replicas to catch up
// when reads go to them, checks that every target serves the tables, and
// returns the targets, built in the order of AllTargets by their entries
// of targetBuilders, then the replica workloads'. On error it stops
// whatever it started. Close stops them.
func Prepare(ctx context.Context, cfg SetupConfig) (_ *Setup, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Setup{Environment: ReadEnvironment()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	b := &builder{s: s, cfg: cfg, progress: func(format string, args ...any) { fmt.Fprintf(cfg.Progress, format+"\n", args...) }}
	if b.pb, err = NewPgbench(cfg.PgbenchPath, cfg.Logger); err != nil {
		return nil, err
	}
	if s.Environment.Pgbench, err = b.pb.Version(ctx); err != nil {
		return nil, err
	}
	replicaRead := slices.Contains(cfg.Workloads, WorkloadReplicaRead)
	writeToken := slices.Contains(cfg.Workloads, WorkloadWriteToken)
	if !slices.ContainsFunc(cfg.Workloads, func(w string) bool { return !ownTargets(w) }) {
		// Only replica workloads: the default targets would run nothing.
		b.cfg.Targets = nil
	}
	if replicaRead || writeToken {
		b.replicas = benchReplicas
	}
	if cfg.External != nil {
		b.locateExternal()
	} else if err := b.startCluster(ctx); err != nil {
		return nil, err
	}
	if err := b.initTargets(ctx); err != nil {
		return nil, err
	}
	for _, tb := range targetBuilders {
		if !b.want(tb.name) {
			continue
		}
		t, err := tb.build(b, ctx)
		if err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets, t)
	}
	for _, replicaTargets := range []struct {
		on    bool
		build func(context.Context) ([]Target, error)
	}{{replicaRead, b.replicaReadTargets}, {writeToken, b.writeTokenTargets}} {
		if !replicaTargets.on {
			continue
		}
		ts, err := replicaTargets.build(ctx)
		if err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets, ts...)
	}

	for _, t := range s.Targets {
		if t.Name == TargetDirect || t.Name == TargetPgBouncer {
			continue // checked as they were built
		}
		for _, e := range t.Endpoints {
			if err := b.pb.Check(ctx, t.Name, e); err != nil {
				return nil, err
			}
		}
	}
	s.Baselines = baselines(s.Targets)
	return s, nil
}

// locateExternal fills in where the external cluster's tenants and servers
// are, and leaves out the targets it cannot have.
func (b *builder) locateExternal() {
	ext := b.cfg.External
	b.routerDSN, b.directDSN, b.directDSN2, b.tenant1, b.tenant2, b.routerPID = ext.RouterDSN, ext.DirectDSN, ext.DirectDSN2, ext.Tenant, ext.Tenant2, ext.RouterPID
	b.shard1, b.shard2 = "the tenant's shard", "another shard"
	for _, tb := range targetBuilders {
		if why := tb.unavailable(ext); why != "" && b.want(tb.name) {
			b.cfg.Logger.Info(why + "; leaving out the " + tb.name + " target")
			b.cfg.Targets = slices.DeleteFunc(b.cfg.Targets, func(n string) bool { return n == tb.name })
		}
	}
}

// startCluster starts the throwaway cluster, with b.replicas streaming
// replicas per shard, and fills in where its tenants and servers are.
func (b *builder) startCluster(ctx context.Context) error {
	cfg, s := b.cfg, b.s
	b.progress("starting a throwaway cluster: shardline up --shards 2 --replicas %d in %s", b.replicas, cfg.Dir)
	var err error
	s.cluster, err = StartCluster(ctx, ClusterConfig{
		Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv,
		Dir: filepath.Join(cfg.Dir, "up"), PoolSize: cfg.PoolSize, Replicas: b.replicas, MaxConnections: cfg.maxConnections(), Logger: cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	s.ClusterLog = s.cluster.LogPath()
	s.Environment.Shardline = BinaryRevision(cfg.Shardline)
	b.routerDSN, b.routerPID = s.cluster.RouterDSN, s.cluster.PID()
	shards, err := s.cluster.Shards(ctx)
	if err != nil {
		return err
	}
	if len(shards) < 2 {
		return fmt.Errorf("the throwaway cluster has %d shard(s), want 2", len(shards))
	}
	b.shard1, b.shard2, b.directDSN, b.directDSN2 = shards[0].ID, shards[1].ID, shards[0].PrimaryDSN, shards[1].PrimaryDSN
	tenants, err := s.cluster.FindTenants(ctx, cfg.TenantPrefix, []string{b.shard1, b.shard2})
	if err != nil {
		return err
	}
	b.tenant1, b.tenant2 = tenants[b.shard1], tenants[b.shard2]
	cfg.Logger.Info("tenants", "shard1", b.shard1, "tenant1", b.tenant1, "shard2", b.shard2, "tenant2", b.tenant2)
	return nil
}

// initTargets fills in the endpoints the builders share, creates the
// pgbench tables through the router on each tenant's shard, checks that
// direct reaches them, reads the server's version and words the
// descriptions' endings.
func (b *builder) initTargets(ctx context.Context) error {
	cfg := b.cfg
	b.ep1 = Endpoint{DSN: b.routerDSN, Options: "-c shardline.tenant=" + b.tenant1}
	b.ep2 = Endpoint{DSN: b.routerDSN, Options: "-c shardline.tenant=" + b.tenant2}
	// The direct targets reach the servers over TCP, as the clients reach
	// the proxies; PgBouncer and the routers reach them as the cluster
	// publishes them (up's servers: over their Unix sockets first).
	directTCP, err := tcpDSN(b.directDSN)
	if err != nil {
		return err
	}
	b.directTCP = Endpoint{DSN: directTCP}
	b.hop = serverHop(b.directDSN)

	tenantEPs := []Endpoint{b.ep1}
	if b.wantTwoTenants() {
		tenantEPs = append(tenantEPs, b.ep2)
	}
	for _, e := range tenantEPs {
		if err := initTables(ctx, b.pb, cfg, "router", e, b.progress); err != nil {
			return err
		}
	}
	if err := b.pb.Check(ctx, TargetDirect, b.directTCP); err != nil {
		if errors.Is(err, ErrNotInitialized) {
			return fmt.Errorf("%w; the direct DSN must reach the database of the primary of the shard that holds tenant %s, where the router put the pgbench tables", err, b.tenant1)
		}
		return err
	}
	if b.s.Environment.PostgreSQL, err = serverVersion(ctx, b.directDSN); err != nil {
		cfg.Logger.Warn("cannot read the PostgreSQL version", "err", err)
	}
	if b.replicas > 0 {
		b.onCluster = fmt.Sprintf(" (the cluster has %d streaming replica(s) per shard)", b.replicas)
	}
	if n := cfg.maxConnections(); n > 0 && cfg.External == nil {
		b.maxConns = fmt.Sprintf("; max_connections=%d (PostgreSQL's 300 would not hold %d clients beside the pools)", n, cfg.MaxClients)
	}
	return nil
}

// baselines are the targets ratios divide by: direct and pgbouncer, those
// present, else the first default target; and router-primary and
// router-no-tokens, when present.
func baselines(targets []Target) []string {
	has := func(name string) bool {
		return slices.ContainsFunc(targets, func(t Target) bool { return t.Name == name })
	}
	var out []string
	if !has(TargetDirect) && !has(TargetPgBouncer) && len(targets) > 0 && len(targets[0].Workloads) == 0 {
		// Neither usual baseline: the first default target is (as
		// Config.Baselines' default would have it).
		out = append(out, targets[0].Name)
	}
	for _, name := range []string{TargetDirect, TargetPgBouncer, TargetRouterPrimary, TargetRouterNoTokens} {
		if has(name) {
			out = append(out, name)
		}
	}
	return out
}

// initTables runs pgbench -i through the router endpoint e (label names
// the router in errors) as cfg.Init says (a throwaway cluster always) and
// checks the tables serve.
func initTables(ctx context.Context, pb *Pgbench, cfg SetupConfig, label string, e Endpoint, progress func(string, ...any)) error {
	name := label + " (" + strings.TrimPrefix(e.Options, "-c ") + ")"
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
		progress("creating the pgbench tables through the %s: pgbench -i -s %d with PGOPTIONS='%s'", label, cfg.Scale, e.Options)
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

// Close stops PgBouncer, the router processes and the throwaway clusters,
// if started. It returns the errors of each; safe to call more than once.
func (s *Setup) Close() error {
	var errs []error
	for _, b := range s.bouncers {
		errs = append(errs, b.Close())
	}
	// The routers before the cluster whose etcd and servers they use.
	for _, r := range s.routers {
		errs = append(errs, r.Close())
	}
	if s.noTokens != nil {
		errs = append(errs, s.noTokens.Close())
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Close())
	}
	return errors.Join(errs...)
}

// Alive returns an error wrapping ErrProcessGone when PgBouncer, a router
// process or a throwaway cluster has exited.
func (s *Setup) Alive() error {
	var errs []error
	for _, b := range s.bouncers {
		errs = append(errs, b.Err())
	}
	for _, r := range s.routers {
		errs = append(errs, r.Err())
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.Err())
	}
	if s.noTokens != nil {
		errs = append(errs, s.noTokens.Err())
	}
	return errors.Join(errs...)
}
