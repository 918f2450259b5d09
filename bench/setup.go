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
	// TargetRouter is a router with one tenant on the first shard: a
	// pass-through to the same primary. On a throwaway cluster it is a
	// `shardline router` process of its own with the bench's pool size.
	TargetRouter = "router"
	// TargetRouter2 is a router with the clients split between a tenant
	// on the first shard and one on the second. On a throwaway cluster it
	// is another `shardline router` process, with half the pool size per
	// shard: the same server connections in all as TargetRouter's.
	TargetRouter2 = "router-2shards"
	// TargetDirect2 is the two shards' primaries directly, no proxy: the
	// clients split between them as router-2shards splits them. Next to
	// direct, it shows what two PostgreSQL servers on the machine cost
	// the servers themselves, apart from routing.
	TargetDirect2 = "direct-2shards"
	// TargetPgBouncer2 is a PgBouncer of its own in front of both shards'
	// primaries, one database name per shard, the clients split between
	// them as router-2shards splits them, with router-2shards' pool size
	// per shard. It is PgBouncer routing by database name: next to
	// pgbouncer, it shows what spreading the same clients over two
	// servers costs a proxy that does no routing work of its own worth
	// the name, the control for router-2shards against router.
	TargetPgBouncer2 = "pgbouncer-2shards"
	// TargetRouter2OneServer is router-2shards' routing without the second
	// server: a router of its own whose placement (a copy of the cluster's
	// under another name in its etcd) has both shards, with their slot
	// table, on the first shard's primary. The same tenants, pools and
	// routing work as router-2shards, one server as router's: next to
	// both, it tells what routing costs from what the second server does.
	// Select-only workloads, on a throwaway cluster only.
	TargetRouter2OneServer = "router-2shards-1server"

	// TargetRouterPrimary and TargetRouterReplica are the replica-read
	// workload's targets: the router on a cluster with replicas, every
	// session read-only by default (default_transaction_read_only=on),
	// with shardline.target=primary and shardline.target=replica.
	TargetRouterPrimary = "router-primary"
	TargetRouterReplica = "router-replica"
	// TargetRouterNoTokens and TargetRouterTokens are the write-token
	// workload's targets: the router of a second throwaway cluster started
	// with --no-write-tokens, and the first cluster's router, which takes
	// a read-your-writes token after each write transaction.
	TargetRouterNoTokens = "router-no-tokens"
	TargetRouterTokens   = "router-tokens"
)

// benchReplicas is the streaming replicas per shard of a throwaway cluster
// for the replica workloads.
const benchReplicas = 1

// replicaRunLag is the lag within which the replica-read cell's replica
// must be before each of its runs: a quarter of shardline.max_lag's 1s.
const replicaRunLag = 250 * time.Millisecond

// replicaReadyTimeout bounds the wait for the replicas to catch up after
// the pgbench tables were created.
const replicaReadyTimeout = 2 * time.Minute

// AllTargets returns the names of the targets that --targets selects, in
// benchmark order; the replica workloads' targets come with their
// workloads. It returns a new slice on each call.
func AllTargets() []string {
	return []string{TargetDirect, TargetDirect2, TargetPgBouncer, TargetPgBouncer2, TargetRouter, TargetRouter2, TargetRouter2OneServer}
}

// oneServerWorkloads are the workloads router-2shards-1server runs: those
// of the two-shard goal.
func oneServerWorkloads() []string {
	return []string{WorkloadSelectSimple, WorkloadSelectExtended}
}

// direct2Workloads are the workloads direct-2shards runs: those that
// router-2shards runs and that read as throughput; churn only measures
// connection setup, which direct already shows.
func direct2Workloads() []string {
	return []string{WorkloadSelectSimple, WorkloadSelectExtended, WorkloadSelectPrepared, WorkloadWrite}
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
	// DirectDSN2 reaches the primary of Tenant2's shard, for the
	// direct-2shards target; empty leaves that target out.
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

// routerLogDir is the work directory's folder of the router processes'
// logs (TARGET.log).
const routerLogDir = "routers"

// routerSide is where a router target's clients go and what measures it.
type routerSide struct {
	dsn           string
	pid           int
	process, pool string
	metricsURL    string // "" for an external router (its endpoint is not known)
}

// Prepare starts what the targets need (a throwaway `shardline up` unless
// cfg.External is set, with a `shardline router` process against its etcd
// for each router target, a second cluster with --no-write-tokens for the
// write-token workload, and a PgBouncer), creates the pgbench tables
// through the cluster's router for each tenant, waits for the replicas to catch up
// when reads go to them, checks that every target serves the tables, and
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
	replicaRead := slices.Contains(cfg.Workloads, WorkloadReplicaRead)
	writeToken := slices.Contains(cfg.Workloads, WorkloadWriteToken)
	if !slices.ContainsFunc(cfg.Workloads, func(w string) bool { return !ownTargets(w) }) {
		// Only replica workloads: the default targets would run nothing.
		cfg.Targets = nil
	}
	want := func(name string) bool { return slices.Contains(cfg.Targets, name) }
	replicas := 0
	if replicaRead || writeToken {
		replicas = benchReplicas
	}

	// Where the router's tenants live and where direct connects.
	var (
		routerDSN, directDSN string
		directDSN2           string
		tenant1, tenant2     string
		shard1, shard2       string
		routerPID            int
	)
	if ext := cfg.External; ext != nil {
		routerDSN, directDSN, directDSN2, tenant1, tenant2, routerPID = ext.RouterDSN, ext.DirectDSN, ext.DirectDSN2, ext.Tenant, ext.Tenant2, ext.RouterPID
		shard1, shard2 = "the tenant's shard", "another shard"
		drop := func(target, why string) {
			if want(target) {
				log.Info(why + "; leaving out the " + target + " target")
				cfg.Targets = slices.DeleteFunc(cfg.Targets, func(n string) bool { return n == target })
			}
		}
		drop(TargetRouter2OneServer, "an external cluster (the bench writes no placement into it)")
		if tenant2 == "" {
			drop(TargetRouter2, "no second tenant given")
			drop(TargetDirect2, "no second tenant given")
			drop(TargetPgBouncer2, "no second tenant given")
		}
		if directDSN2 == "" {
			drop(TargetDirect2, "no DSN of the second tenant's primary given")
			drop(TargetPgBouncer2, "no DSN of the second tenant's primary given")
		}
	} else {
		progress("starting a throwaway cluster: shardline up --shards 2 --replicas %d in %s", replicas, cfg.Dir)
		s.cluster, err = StartCluster(ctx, ClusterConfig{
			Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv,
			Dir: filepath.Join(cfg.Dir, "up"), PoolSize: cfg.PoolSize, Replicas: replicas, MaxConnections: cfg.maxConnections(), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
		s.ClusterLog = s.cluster.LogPath()
		s.Environment.Shardline = BinaryRevision(cfg.Shardline)
		routerDSN, routerPID = s.cluster.RouterDSN, s.cluster.PID()
		shards, err := s.cluster.Shards(ctx)
		if err != nil {
			return nil, err
		}
		if len(shards) < 2 {
			return nil, fmt.Errorf("the throwaway cluster has %d shard(s), want 2", len(shards))
		}
		shard1, shard2, directDSN, directDSN2 = shards[0].ID, shards[1].ID, shards[0].PrimaryDSN, shards[1].PrimaryDSN
		tenants, err := s.cluster.FindTenants(ctx, cfg.TenantPrefix, []string{shard1, shard2})
		if err != nil {
			return nil, err
		}
		tenant1, tenant2 = tenants[shard1], tenants[shard2]
		log.Info("tenants", "shard1", shard1, "tenant1", tenant1, "shard2", shard2, "tenant2", tenant2)
	}
	ep1 := Endpoint{DSN: routerDSN, Options: "-c shardline.tenant=" + tenant1}
	ep2 := Endpoint{DSN: routerDSN, Options: "-c shardline.tenant=" + tenant2}
	// The direct targets reach the servers over TCP, as the clients reach
	// the proxies; PgBouncer and the routers reach them as the cluster
	// publishes them (up's servers: over their Unix sockets first).
	directTCP, err := tcpDSN(directDSN)
	if err != nil {
		return nil, err
	}
	direct := Endpoint{DSN: directTCP}
	hop := serverHop(directDSN)

	// pgbench tables through the router, on each tenant's shard.
	tenantEPs := []Endpoint{ep1}
	if want(TargetRouter2) || want(TargetDirect2) || want(TargetPgBouncer2) || want(TargetRouter2OneServer) {
		tenantEPs = append(tenantEPs, ep2)
	}
	for _, e := range tenantEPs {
		if err := initTables(ctx, pb, cfg, "router", e, progress); err != nil {
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
	onCluster := ""
	if replicas > 0 {
		onCluster = fmt.Sprintf(" (the cluster has %d streaming replica(s) per shard)", replicas)
	}

	maxConns := ""
	if n := cfg.maxConnections(); n > 0 && cfg.External == nil {
		maxConns = fmt.Sprintf("; max_connections=%d (PostgreSQL's 300 would not hold %d clients beside the pools)", n, cfg.MaxClients)
	}
	if want(TargetDirect) {
		s.Targets = append(s.Targets, Target{
			Name:            TargetDirect,
			Description:     fmt.Sprintf("PostgreSQL directly: the primary of shard %s, no proxy%s%s", shard1, onCluster, maxConns),
			Endpoints:       []Endpoint{direct},
			ConnectsServers: true,
		})
	}
	if want(TargetDirect2) {
		direct2TCP, err := tcpDSN(directDSN2)
		if err != nil {
			return nil, err
		}
		direct2 := Endpoint{DSN: direct2TCP}
		s.Targets = append(s.Targets, Target{
			Name: TargetDirect2,
			Description: fmt.Sprintf("PostgreSQL directly, two pgbench processes at once, half the clients each: the primaries of shards %s and %s, no proxy "+
				"(what two servers on this machine cost, apart from routing)%s", shard1, shard2, onCluster),
			Endpoints:       []Endpoint{direct, direct2},
			Workloads:       direct2Workloads(),
			ConnectsServers: true,
		})
	}
	if want(TargetPgBouncer) {
		progress("starting PgBouncer (transaction mode, pool size %d) in front of shard %s's primary", cfg.PoolSize, shard1)
		b, err := s.startBouncer(ctx, cfg, TargetPgBouncer, PgBouncerConfig{Server: directDSN, PoolSize: cfg.PoolSize})
		if err != nil {
			return nil, err
		}
		t := bouncerTarget(TargetPgBouncer, b, fmt.Sprintf("%s, pool_mode=transaction, default_pool_size=%d, in front of the primary of shard %s%s",
			b.Version(), b.PoolSize(), shard1, onCluster))
		t.Pool = fmt.Sprintf("%d to shard %s (default_pool_size), over %s", b.PoolSize(), shard1, hop)
		if err := pb.Check(ctx, TargetPgBouncer, t.Endpoints[0]); err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets, t)
	}
	if want(TargetPgBouncer2) {
		pool := max(1, cfg.PoolSize/2)
		progress("starting PgBouncer (transaction mode, pool size %d per database) in front of shards %s and %s's primaries", pool, shard1, shard2)
		b, err := s.startBouncer(ctx, cfg, TargetPgBouncer2, PgBouncerConfig{Server: directDSN, PoolSize: pool,
			Also: []PgBouncerDatabase{{Name: secondDatabase(directDSN2), Server: directDSN2}}})
		if err != nil {
			return nil, err
		}
		dbs := b.Databases()
		t := bouncerTarget(TargetPgBouncer2, b, fmt.Sprintf("%s, two pgbench processes at once, half the clients each: database %s (shard %s) and %s (shard %s), "+
			"pool_mode=transaction, default_pool_size=%d per database (PgBouncer routing by database name: the control for router-2shards)%s",
			b.Version(), dbs[0], shard1, dbs[1], shard2, b.PoolSize(), onCluster))
		t.Pool = fmt.Sprintf("%d per shard: %d in all to shards %s and %s, over %s", b.PoolSize(), 2*b.PoolSize(), shard1, shard2, hop)
		t.Workloads = direct2Workloads()
		s.Targets = append(s.Targets, t)
	}
	if want(TargetRouter) || want(TargetRouter2) {
		r1, r2, err := s.routerSides(ctx, cfg, routerDSN, routerPID, shard1, shard2, hop, progress)
		if err != nil {
			return nil, err
		}
		if want(TargetRouter) {
			s.Targets = append(s.Targets, Target{
				Name: TargetRouter,
				Description: fmt.Sprintf("Shardline router, every client tenant %s (shard %s) by startup option: pass-through to one shard%s",
					tenant1, shard1, onCluster),
				Endpoints:  []Endpoint{{DSN: r1.dsn, Options: ep1.Options}},
				ProxyPID:   r1.pid,
				Process:    r1.process,
				Pool:       r1.pool,
				MetricsURL: r1.metricsURL,
			})
		}
		if want(TargetRouter2) {
			s.Targets = append(s.Targets, Target{
				Name: TargetRouter2,
				Description: fmt.Sprintf("Shardline router, two pgbench processes at once, half the clients each: tenant %s (shard %s) and tenant %s (shard %s), by startup option%s",
					tenant1, shard1, tenant2, shard2, onCluster),
				Endpoints:  []Endpoint{{DSN: r2.dsn, Options: ep1.Options}, {DSN: r2.dsn, Options: ep2.Options}},
				ProxyPID:   r2.pid,
				Process:    r2.process,
				Pool:       r2.pool,
				MetricsURL: r2.metricsURL,
			})
		}
	}
	if want(TargetRouter2OneServer) {
		t, err := s.oneServerTarget(ctx, cfg, tenant1, shard1, tenant2, shard2, hop, ep1, ep2, progress)
		if err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets, t)
	}

	// The replica workloads' targets use the routers of `shardline up`.
	const upProcess = "shardline up: etcd, the manager and its router in one process"
	upPool := fmt.Sprintf("%d per shard member", cfg.PoolSize)
	if replicaRead {
		// Reads may use a replica only once it has replayed the tables
		// within shardline.max_lag (1s by default).
		progress("waiting for the replicas of shard %s to catch up", shard1)
		if err := s.cluster.WaitReplicas(ctx, shard1, time.Second, replicaReadyTimeout); err != nil {
			return nil, err
		}
		const readOnly = " -c default_transaction_read_only=on"
		s.Targets = append(s.Targets,
			Target{
				Name: TargetRouterPrimary,
				Description: fmt.Sprintf("Shardline router, %d streaming replica(s) per shard, every client tenant %s (shard %s) with shardline.target=primary "+
					"and default_transaction_read_only=on: reads on the primary", replicas, tenant1, shard1),
				Endpoints:  []Endpoint{{DSN: routerDSN, Options: ep1.Options + " -c shardline.target=primary" + readOnly}},
				ProxyPID:   routerPID,
				Process:    upProcess,
				Pool:       upPool,
				Workloads:  []string{WorkloadReplicaRead},
				MetricsURL: s.cluster.MetricsURL,
			},
			Target{
				Name: TargetRouterReplica,
				Description: fmt.Sprintf("the same router and tenant with shardline.target=replica and default_transaction_read_only=on: "+
					"read-only transactions on a replica of shard %s within shardline.max_lag (1s), else on the primary", shard1),
				Endpoints:  []Endpoint{{DSN: routerDSN, Options: ep1.Options + " -c shardline.target=replica" + readOnly}},
				ProxyPID:   routerPID,
				Process:    upProcess,
				Pool:       upPool,
				Workloads:  []string{WorkloadReplicaRead},
				MetricsURL: s.cluster.MetricsURL,
				// A write cell before this one (write-token on this
				// cluster) leaves the replica WAL to replay; reads wait
				// for it on the primary. This cell measures reads on a
				// replica that has caught up, so each run starts once
				// the replica is well within the 1s bound.
				Ready: func(ctx context.Context) error {
					return s.cluster.WaitReplicas(ctx, shard1, replicaRunLag, replicaReadyTimeout)
				},
			})
	}
	if writeToken {
		progress("starting a second throwaway cluster for the write-token workload: shardline up --shards 2 --replicas %d --no-write-tokens", replicas)
		s.noTokens, err = StartCluster(ctx, ClusterConfig{
			Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv,
			Dir: filepath.Join(cfg.Dir, "up-no-tokens"), PoolSize: cfg.PoolSize, Replicas: replicas, NoWriteTokens: true, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("start the cluster without write tokens: %w", err)
		}
		s.NoTokensLog = s.noTokens.LogPath()
		shards, err := s.noTokens.Shards(ctx)
		if err != nil {
			return nil, err
		}
		tenants, err := s.noTokens.FindTenants(ctx, cfg.TenantPrefix, []string{shards[0].ID})
		if err != nil {
			return nil, err
		}
		epNo := Endpoint{DSN: s.noTokens.RouterDSN, Options: "-c shardline.tenant=" + tenants[shards[0].ID]}
		if err := initTables(ctx, pb, cfg, TargetRouterNoTokens, epNo, progress); err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets,
			Target{
				Name: TargetRouterNoTokens,
				Description: fmt.Sprintf("Shardline router of a second throwaway cluster like the first, started with --no-write-tokens: "+
					"every client tenant %s (shard %s), no read-your-writes token after write transactions", tenants[shards[0].ID], shards[0].ID),
				Endpoints:  []Endpoint{epNo},
				ProxyPID:   s.noTokens.PID(),
				Process:    "shardline up --no-write-tokens (a second cluster): etcd, the manager and its router in one process",
				Pool:       upPool,
				Workloads:  []string{WorkloadWriteToken},
				MetricsURL: s.noTokens.MetricsURL,
			},
			Target{
				Name: TargetRouterTokens,
				Description: fmt.Sprintf("Shardline router of the first cluster (%d streaming replica(s) per shard), every client tenant %s (shard %s): "+
					"a read-your-writes token (SELECT pg_current_wal_insert_lsn() pipelined behind the COMMIT) after each write transaction", replicas, tenant1, shard1),
				Endpoints:  []Endpoint{ep1},
				ProxyPID:   routerPID,
				Process:    upProcess,
				Pool:       upPool,
				Workloads:  []string{WorkloadWriteToken},
				MetricsURL: s.cluster.MetricsURL,
			})
	}

	for _, t := range s.Targets {
		if t.Name == TargetDirect || t.Name == TargetPgBouncer {
			continue // checked above
		}
		for _, e := range t.Endpoints {
			if err := pb.Check(ctx, t.Name, e); err != nil {
				return nil, err
			}
		}
	}
	has := func(name string) bool {
		return slices.ContainsFunc(s.Targets, func(t Target) bool { return t.Name == name })
	}
	if !has(TargetDirect) && !has(TargetPgBouncer) && len(s.Targets) > 0 && len(s.Targets[0].Workloads) == 0 {
		// Neither usual baseline: the first default target is (as
		// Config.Baselines' default would have it).
		s.Baselines = append(s.Baselines, s.Targets[0].Name)
	}
	for _, b := range []string{TargetDirect, TargetPgBouncer, TargetRouterPrimary, TargetRouterNoTokens} {
		if has(b) {
			s.Baselines = append(s.Baselines, b)
		}
	}
	return s, nil
}

// startBouncer starts a PgBouncer of the bench's for target, in a work
// directory of its own, with c's servers and pool size and the bench's
// binary and max_client_conn.
func (s *Setup) startBouncer(ctx context.Context, cfg SetupConfig, target string, c PgBouncerConfig) (*PgBouncer, error) {
	c.Path, c.MaxClientConn, c.Logger = cfg.PgBouncerPath, cfg.MaxClientConn, cfg.Logger
	c.Dir = filepath.Join(cfg.Dir, target)
	b, err := StartPgBouncer(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("start pgbouncer for %s: %w", target, err)
	}
	s.bouncers = append(s.bouncers, b)
	s.Environment.PgBouncer = b.Version()
	return b, nil
}

// bouncerTarget is the target of PgBouncer b: its endpoints, process and
// what it cannot serve.
func bouncerTarget(name string, b *PgBouncer, description string) Target {
	t := Target{Name: name, Description: description, Endpoints: b.Endpoints(), ProxyPID: b.PID(), Process: b.Version()}
	if !b.PreparedStatements() {
		t.Unsupported = map[string]string{WorkloadSelectPrepared: b.Version() +
			" in transaction mode does not keep named prepared statements across server connections (pgbench -M prepared aborts)"}
	}
	return t
}

// secondDatabase names the second shard's database for clients of a
// PgBouncer that pools both shards: the server's database name with "_2"
// (app_2), as both shards' databases have the same name.
func secondDatabase(dsn string) string {
	name := "app"
	if srv, err := parseServer(dsn); err == nil {
		name = srv.dbname
	}
	return name + "_2"
}

// routerSides returns where the router and router-2shards targets' clients
// go. With an external cluster both use its router. Otherwise each wanted
// target gets a `shardline router` process of its own against the
// throwaway cluster's etcd: router with cfg.PoolSize server connections per
// shard, router-2shards with max(1, cfg.PoolSize/2), so that its two
// shards together have as many as router's one (the same pool pressure at
// the same client count). hop says how the routers reach the servers.
func (s *Setup) routerSides(ctx context.Context, cfg SetupConfig, extDSN string, extPID int, shard1, shard2, hop string,
	progress func(string, ...any)) (r1, r2 routerSide, err error) {
	if cfg.External != nil {
		ext := routerSide{dsn: extDSN, pid: extPID, process: "the external router, not measured (no --router-pid)",
			pool: "the external router's own (not known to the bench)"}
		if extPID > 0 {
			ext.process = fmt.Sprintf("the external router (pid %d)", extPID)
		}
		return ext, ext, nil
	}
	if slices.Contains(cfg.Targets, TargetRouter) {
		r, proc, err := s.startRouter(ctx, cfg, TargetRouter, cfg.PoolSize, "", progress)
		if err != nil {
			return r1, r2, err
		}
		r1 = routerSide{dsn: r.DSN, pid: r.PID(), metricsURL: r.MetricsURL, process: proc,
			pool: fmt.Sprintf("%d to shard %s, over %s", r.PoolSize, shard1, hop)}
	}
	if slices.Contains(cfg.Targets, TargetRouter2) {
		r, proc, err := s.startRouter(ctx, cfg, TargetRouter2, max(1, cfg.PoolSize/2), "", progress)
		if err != nil {
			return r1, r2, err
		}
		r2 = routerSide{dsn: r.DSN, pid: r.PID(), metricsURL: r.MetricsURL, process: proc,
			pool: fmt.Sprintf("%d per shard: %d in all to shards %s and %s, over %s", r.PoolSize, 2*r.PoolSize, shard1, shard2, hop)}
	}
	return r1, r2, nil
}

// startRouter starts target's `shardline router` against the throwaway
// cluster's etcd (under placement name cluster; "" for the cluster's own)
// and names its process and how its event loop runs (the report's
// settings table says so).
func (s *Setup) startRouter(ctx context.Context, cfg SetupConfig, target string, poolSize int, cluster string,
	progress func(string, ...any)) (*RouterProcess, string, error) {
	if err := os.MkdirAll(filepath.Join(cfg.Dir, routerLogDir), 0o755); err != nil {
		return nil, "", fmt.Errorf("router log directory: %w", err)
	}
	progress("starting a router for %s: shardline router --pool-size %d against the cluster's etcd", target, poolSize)
	r, err := StartRouter(ctx, RouterConfig{
		Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv, Name: target,
		LogPath: filepath.Join(cfg.Dir, routerLogDir, target+".log"), Etcd: s.cluster.Etcd, PoolSize: poolSize, Cluster: cluster,
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, "", fmt.Errorf("start the router for %s: %w", target, err)
	}
	s.routers = append(s.routers, r)
	s.RouterLogs = append(s.RouterLogs, r.LogPath())
	mode, err := ScrapeLoopMode(ctx, r.MetricsURL)
	if err != nil {
		return nil, "", err
	}
	flags := fmt.Sprintf("--pool-size %d", r.PoolSize)
	if cluster != "" {
		flags += " --cluster " + cluster
	}
	return r, fmt.Sprintf("shardline router %s (event loop: %s)", flags, mode), nil
}

// pgDefaultMaxConnections is max_connections of a `shardline up` cluster
// unless --max-connections says otherwise.
const pgDefaultMaxConnections = 300

// maxConnections returns the throwaway cluster's max_connections: 0 (up's
// default, 300) when that holds the first shard's primary at its busiest:
// direct's cfg.MaxClients while every pool to that primary is full (up's
// router, PgBouncer, the router process, the half-size pools of
// pgbouncer-2shards and router-2shards, and both half-size pools of
// router-2shards-1server), plus
// headroom for the replica monitors and pgbench's own connection. Else
// enough for that.
func (cfg *SetupConfig) maxConnections() int {
	const headroom = 20
	need := cfg.MaxClients + 3*cfg.PoolSize + 4*max(1, cfg.PoolSize/2) + headroom
	if need <= pgDefaultMaxConnections {
		return 0
	}
	return need
}

// fill checks cfg and sets its defaults.
func (cfg *SetupConfig) fill() error {
	if cfg.Dir == "" {
		return fmt.Errorf("%w: setup: Dir is required", ErrInvalidConfig)
	}
	if len(cfg.Targets) == 0 {
		cfg.Targets = AllTargets()
	}
	if len(cfg.Workloads) == 0 {
		cfg.Workloads = Workloads()
	}
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
