// Package bench measures what the Shardline router costs next to
// PostgreSQL directly and PgBouncer in transaction mode, side by side in one
// run (see docs/bench.md).
//
// Run drives the pgbench binary over a matrix of workloads and client
// counts, alternating targets round by round so that drift of the machine
// hits every target alike, and reads pgbench's summary (ParseOutput) and
// per-transaction log (ParseTxLog) for throughput and latency percentiles,
// and /proc (ReadProcStat, ReadRSS) for the proxy's CPU time per
// transaction and memory per idle connection. Report renders the medians
// and the ratios to baseline targets as a table, JSON or Markdown.
//
// Prepare builds the targets: it starts a throwaway `shardline up` as a
// child process (StartCluster) unless given a running cluster, and the
// bench's own PgBouncer (StartPgBouncer), and creates the pgbench tables
// through the router. RunSuite prepares, runs and stops in one call, from
// a SuiteConfig (what `shardline bench` fills from its flags), whose
// Validate checks every setting before anything starts.
//
// Nothing here is safe for concurrent use by design: a benchmark owns the
// machine while it runs. Calls block until their children exit; cancelling
// the context ends them. Every child process is started in its own process
// group with SIGTERM as its parent-death signal, and stopped by Close.
package bench
