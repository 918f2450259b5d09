// Package bench measures what the Shardline router costs: it runs pgbench
// against several targets (typically the shard primary directly and the
// router in front of it) in one run, alternating targets round by round so
// that drift on the machine hits every target alike, and reports the median
// throughput and latency of each target and its ratio to the first target.
//
// The package drives the pgbench binary of PostgreSQL; it parses pgbench's
// text output (see ParseOutput) and never talks to a server itself.
//
// Nothing here is safe for concurrent use by design: a benchmark owns the
// machine while it runs. Run, Init and the Pgbench methods block until their
// pgbench child exits; cancelling the context kills the child.
package bench
