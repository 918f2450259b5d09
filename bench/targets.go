package bench

import (
	"context"
	"fmt"
	"slices"
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
)

// targetBuilder is one target that --targets selects: its name, what it
// needs of an external cluster, and build, which starts what the target
// needs (adding it to the Setup, which stops it) and returns the target.
type targetBuilder struct {
	name string
	// throwawayOnly: the target needs the throwaway cluster.
	throwawayOnly bool
	// twoTenants: the target needs the second tenant, on another shard.
	twoTenants bool
	// twoServers: the target needs the DSN of the second tenant's primary.
	twoServers bool
	// optIn: only when --targets names it (not in DefaultTargets).
	optIn bool
	build func(b *builder, ctx context.Context) (Target, error)
}

// targetBuilders are the targets that --targets selects, in benchmark
// order: the order Prepare builds them in and the report lists them.
var targetBuilders = []targetBuilder{
	{name: TargetDirect, build: (*builder).direct},
	{name: TargetDirect2, twoTenants: true, twoServers: true, build: (*builder).direct2},
	{name: TargetPgBouncer, build: (*builder).pgbouncer},
	{name: TargetPgBouncer2, twoTenants: true, twoServers: true, build: (*builder).pgbouncer2},
	{name: TargetRouter, build: (*builder).router},
	{name: TargetRouter2, twoTenants: true, build: (*builder).router2},
	{name: TargetRouter2OneServer, throwawayOnly: true, twoTenants: true, build: (*builder).oneServer},
	{name: TargetPgBouncerTLS, throwawayOnly: true, optIn: true, build: (*builder).pgbouncerTLS},
	{name: TargetRouterTLS, throwawayOnly: true, optIn: true, build: (*builder).routerTLS},
}

// AllTargets returns the names of the targets that --targets selects, in
// benchmark order; the replica workloads' targets come with their
// workloads. It returns a new slice on each call.
func AllTargets() []string {
	names := make([]string, len(targetBuilders))
	for i, tb := range targetBuilders {
		names[i] = tb.name
	}
	return names
}

// DefaultTargets returns the targets a run has unless --targets says
// otherwise: all but the opt-in ones (the TLS targets). It returns a new
// slice on each call.
func DefaultTargets() []string {
	var names []string
	for _, tb := range targetBuilders {
		if !tb.optIn {
			names = append(names, tb.name)
		}
	}
	return names
}

// unavailable says why an external cluster cannot have the target, or ""
// when it can.
func (tb targetBuilder) unavailable(ext *ExternalCluster) string {
	switch {
	case tb.throwawayOnly:
		return "an external cluster (the bench writes no placement into it)"
	case tb.twoTenants && ext.Tenant2 == "":
		return "no second tenant given"
	case tb.twoServers && ext.DirectDSN2 == "":
		return "no DSN of the second tenant's primary given"
	}
	return ""
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

// builder is what the target builders share: the Setup they add their
// processes to, its config, pgbench, and where the cluster's tenants and
// servers are. Prepare fills it in before the first build.
type builder struct {
	s        *Setup
	cfg      SetupConfig
	pb       *Pgbench
	progress func(format string, args ...any)
	// replicas is the throwaway cluster's streaming replicas per shard.
	replicas int

	// tenant1, on shard1, is every router target's tenant; tenant2, on
	// shard2, the two-shard targets' second.
	tenant1, shard1 string
	tenant2, shard2 string
	// routerDSN and routerPID are the cluster's own router: up's, or the
	// external one.
	routerDSN string
	routerPID int
	// directDSN and directDSN2 reach the shards' primaries as the cluster
	// publishes them (up's servers: over their Unix sockets first), as
	// PgBouncer and the routers reach them; hop says how.
	directDSN, directDSN2 string
	hop                   string
	// directTCP reaches directDSN's server over TCP, as the clients reach
	// the proxies.
	directTCP Endpoint
	// ep1 and ep2 are the cluster's router with tenant1's and tenant2's
	// startup option.
	ep1, ep2 Endpoint
	// onCluster and maxConns end the descriptions: the cluster's
	// replicas and its raised max_connections, when so.
	onCluster, maxConns string
}

// want reports whether target name is to be built.
func (b *builder) want(name string) bool { return slices.Contains(b.cfg.Targets, name) }

// wantTwoTenants reports whether a target to be built needs tenant2.
func (b *builder) wantTwoTenants() bool {
	return slices.ContainsFunc(targetBuilders, func(tb targetBuilder) bool { return tb.twoTenants && b.want(tb.name) })
}

// direct is TargetDirect: the first shard's primary over TCP.
func (b *builder) direct(context.Context) (Target, error) {
	return Target{
		Name:            TargetDirect,
		Description:     fmt.Sprintf("PostgreSQL directly: the primary of shard %s, no proxy%s%s", b.shard1, b.onCluster, b.maxConns),
		Endpoints:       []Endpoint{b.directTCP},
		ConnectsServers: true,
	}, nil
}

// direct2 is TargetDirect2: both shards' primaries over TCP.
func (b *builder) direct2(context.Context) (Target, error) {
	direct2TCP, err := tcpDSN(b.directDSN2)
	if err != nil {
		return Target{}, err
	}
	return Target{
		Name: TargetDirect2,
		Description: fmt.Sprintf("PostgreSQL directly, two pgbench processes at once, half the clients each: the primaries of shards %s and %s, no proxy "+
			"(what two servers on this machine cost, apart from routing)%s", b.shard1, b.shard2, b.onCluster),
		Endpoints:       []Endpoint{b.directTCP, {DSN: direct2TCP}},
		Workloads:       direct2Workloads(),
		ConnectsServers: true,
	}, nil
}
