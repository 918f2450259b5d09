package router

import "github.com/prometheus/client_golang/prometheus"

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
}

// poolMetrics are one pool's children of the shard-labelled vectors,
// resolved once so the hot path does no label lookups.
type poolMetrics struct {
	open         prometheus.Gauge
	waits        prometheus.Counter
	dialErrors   prometheus.Counter
	transactions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
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
	if reg != nil {
		reg.MustRegister(m.sessions, m.sessionsOpen, m.transactions, m.errors, m.backendOpen, m.poolWaits, m.dialErrors, m.parses)
	}
	return m
}

func (m *metrics) forShard(shard string) *poolMetrics {
	return &poolMetrics{
		open:         m.backendOpen.WithLabelValues(shard),
		waits:        m.poolWaits.WithLabelValues(shard),
		dialErrors:   m.dialErrors.WithLabelValues(shard),
		transactions: m.transactions.WithLabelValues(shard),
	}
}
