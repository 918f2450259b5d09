package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardline/shardline/internal/netloop"
)

// metrics are the router's Prometheus collectors, registered on the
// Registerer given in Config (nothing global).
type metrics struct {
	sessions     prometheus.Gauge
	sessionsOpen prometheus.Counter
	transactions *prometheus.CounterVec // by shard
	errors       *prometheus.CounterVec // router-made errors by SQLSTATE
	backendOpen  *prometheus.GaugeVec
	poolWaits    *prometheus.CounterVec
	dialErrors   *prometheus.CounterVec
	parses       prometheus.Counter

	replicaLagBytes   *prometheus.GaugeVec
	replicaLagSeconds *prometheus.GaugeVec
	replicaHealthy    *prometheus.GaugeVec
	reads             *prometheus.CounterVec // by shard and target (primary, replica)
	fallbacks         *prometheus.CounterVec // replica-eligible reads served by the primary, by reason
	writeTokens       prometheus.Counter
	bindings          prometheus.Counter
	ioUring           prometheus.GaugeFunc
	schedBatch        prometheus.GaugeFunc
	loopSleeps        prometheus.CounterFunc
	loops             prometheus.GaugeFunc
}

// eventLoop is what the metrics read from the router's event loops when
// scraped.
type eventLoop interface {
	IOUring() bool
	SchedBatch() bool
	Stats() netloop.Stats
	Count() int
}

// poolMetrics are one pool's children of the shard-labelled vectors,
// resolved once so the hot path does no label lookups.
type poolMetrics struct {
	open         prometheus.Gauge
	waits        prometheus.Counter
	dialErrors   prometheus.Counter
	transactions prometheus.Counter
	// The shard's replica-eligible reads, by the member that served them,
	// and those the primary served by fallback reason.
	readsPrimary, readsReplica prometheus.Counter
	fallbacks                  [numFallbacks]prometheus.Counter // by fallback; none for noFallback
}

// newMetrics makes the router's metrics and registers them on reg (nil:
// none); loop is read when they are scraped.
func newMetrics(reg prometheus.Registerer, loop eventLoop) *metrics {
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardline_router_client_sessions", Help: "Client sessions open now."}),
		sessionsOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardline_router_client_sessions_total", Help: "Client sessions accepted."}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardline_router_transactions_total", Help: "Transactions (and autocommit statements) routed, by shard."}, []string{"shard"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardline_router_errors_total", Help: "Errors the router reported itself, by SQLSTATE."}, []string{"sqlstate"}),
		backendOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardline_router_server_connections", Help: "Open server connections, by shard."}, []string{"shard"}),
		poolWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardline_router_pool_waits_total", Help: "Times a transaction waited for a free server connection, by shard."}, []string{"shard"}),
		dialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardline_router_connect_errors_total", Help: "Failed connections to a shard, by shard."}, []string{"shard"}),
		parses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardline_router_statement_parses_total", Help: "Statements without a tenant parsed to see which tables they touch (cache misses included)."}),
	}
	member := []string{"shard", "member"}
	m.replicaLagBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardline_router_replica_lag_bytes", Help: "Primary WAL position minus the replica's replay position at the last sample."}, member)
	m.replicaLagSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardline_router_replica_lag_seconds", Help: "Age of the oldest primary WAL position the replica had not replayed at the last sample (0 when caught up)."}, member)
	m.replicaHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardline_router_replica_healthy", Help: "1 when the last sample of the replica succeeded."}, member)
	m.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardline_router_read_transactions_total", Help: "Read-only transactions (and autocommit reads) that could use a replica, by shard and the target that served them."}, []string{"shard", "target"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardline_router_replica_fallbacks_total", Help: "Replica-eligible reads served by the primary, by reason (lag, token, unhealthy, none)."}, []string{"shard", "reason"})
	m.writeTokens = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shardline_router_write_tokens_total", Help: "Read-your-writes tokens taken after write transactions (one server round trip each)."})
	m.bindings = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shardline_router_tenant_bindings_total", Help: "Tenants bound on server connections with shardline.enter() (one server round trip each)."})
	m.ioUring = boolGauge(prometheus.GaugeOpts{
		Name: "shardline_router_io_uring", Help: "1 when the event loops batch socket system calls through io_uring, 0 when they make one per read and write (epoll)."},
		loop.IOUring)
	m.schedBatch = boolGauge(prometheus.GaugeOpts{
		Name: "shardline_router_loop_sched_batch", Help: "1 when the event loops' threads run in the SCHED_BATCH scheduling policy (the default), 0 when in the default policy."},
		loop.SchedBatch)
	m.loopSleeps = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "shardline_router_loop_sleeps_total", Help: "Waits of the event loops in the kernel for news when they had nothing to run (one that sleeps costs a wake-up)."},
		func() float64 { return float64(loop.Stats().Sleeps) })
	m.loops = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shardline_router_loops", Help: "Event loops serving the sessions (--loops), a thread each."},
		func() float64 { return float64(loop.Count()) })
	if reg != nil {
		reg.MustRegister(m.sessions, m.sessionsOpen, m.transactions, m.errors, m.backendOpen, m.poolWaits, m.dialErrors, m.parses,
			m.replicaLagBytes, m.replicaLagSeconds, m.replicaHealthy, m.reads, m.fallbacks, m.writeTokens, m.bindings, m.ioUring, m.schedBatch, m.loopSleeps, m.loops)
	}
	return m
}

// boolGauge is a gauge of 1 while f reports true, else 0, read when scraped.
func boolGauge(opts prometheus.GaugeOpts, f func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(opts, func() float64 {
		if f() {
			return 1
		}
		return 0
	})
}

func (m *metrics) forShard(shard string) *poolMetrics {
	pm := &poolMetrics{
		open:         m.backendOpen.WithLabelValues(shard),
		waits:        m.poolWaits.WithLabelValues(shard),
		dialErrors:   m.dialErrors.WithLabelValues(shard),
		transactions: m.transactions.WithLabelValues(shard),
		readsPrimary: m.reads.WithLabelValues(shard, "primary"),
		readsReplica: m.reads.WithLabelValues(shard, "replica"),
	}
	for f := noFallback + 1; f < numFallbacks; f++ {
		pm.fallbacks[f] = m.fallbacks.WithLabelValues(shard, f.label())
	}
	return pm
}
