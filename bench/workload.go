package bench

import (
	"fmt"
	"slices"
	"strings"
)

// Workload names accepted in Config.Workloads.
const (
	// WorkloadSelectSimple is one primary-key SELECT on pgbench_accounts
	// per transaction (pgbench -S) in the simple query protocol.
	WorkloadSelectSimple = "select-simple"
	// WorkloadSelectExtended is -S in the extended protocol with unnamed
	// statements (parse, bind, execute each time), as most drivers do.
	WorkloadSelectExtended = "select-extended"
	// WorkloadSelectPrepared is -S with named prepared statements, parsed
	// once per connection.
	WorkloadSelectPrepared = "select-prepared"
	// WorkloadWrite is pgbench -N (update an account, read it back, insert
	// into history: one write transaction) in the simple protocol.
	WorkloadWrite = "write"
	// WorkloadChurn is -S with a new connection for every transaction
	// (pgbench -C), in the simple protocol.
	WorkloadChurn = "churn"
	// WorkloadIdle opens Config.IdleConns connections, runs one query on
	// each, holds them idle and measures the proxy's memory per
	// connection. It does not use pgbench.
	WorkloadIdle = "idle"
	// WorkloadReplicaRead is -S in the simple protocol through the router
	// on a cluster with replicas, on targets built for it: reads kept on
	// the primary against reads sent to a replica.
	WorkloadReplicaRead = "replica-read"
	// WorkloadWriteToken is -N in the simple protocol through the router
	// with and without the read-your-writes token step, on targets built
	// for it.
	WorkloadWriteToken = "write-token"
)

// Workload is one kind of run.
type Workload struct {
	// Name is one of the Workload* constants.
	Name string
	// Args are pgbench's arguments that select the script and protocol;
	// nil for the idle workload.
	Args []string
	// Idle is true for WorkloadIdle: no clients dimension, no pgbench.
	Idle bool
	// OwnTargets is true for a workload that runs only on the targets
	// that name it in Target.Workloads (built for it: the replica
	// workloads), and on no other.
	OwnTargets bool
	// Description says what one transaction is, for reports.
	Description string
}

// workloads in the order reports list them.
var workloads = []Workload{
	{Name: WorkloadSelectSimple, Args: []string{"-S", "-M", "simple"}, Description: "pgbench -S -M simple: one primary-key SELECT per transaction, simple protocol"},
	{Name: WorkloadSelectExtended, Args: []string{"-S", "-M", "extended"}, Description: "pgbench -S -M extended: the same SELECT, extended protocol, unnamed statements"},
	{Name: WorkloadSelectPrepared, Args: []string{"-S", "-M", "prepared"}, Description: "pgbench -S -M prepared: the same SELECT, named prepared statements"},
	{Name: WorkloadWrite, Args: []string{"-N", "-M", "simple"}, Description: "pgbench -N -M simple: UPDATE, SELECT, INSERT in one transaction"},
	{Name: WorkloadChurn, Args: []string{"-S", "-M", "simple", "-C"}, Description: "pgbench -S -M simple -C: a new connection for every transaction"},
	{Name: WorkloadIdle, Idle: true, Description: "idle connections held open (one SELECT 1 each): proxy memory per connection"},
	{Name: WorkloadReplicaRead, Args: []string{"-S", "-M", "simple"}, OwnTargets: true,
		Description: "pgbench -S -M simple through the router on a cluster with one streaming replica per shard, " +
			"every session with default_transaction_read_only=on: shardline.target=primary (router-primary) against shardline.target=replica (router-replica)"},
	{Name: WorkloadWriteToken, Args: []string{"-N", "-M", "simple"}, OwnTargets: true,
		Description: "pgbench -N -M simple through the router with the read-your-writes token step (router-tokens: " +
			"SELECT pg_current_wal_insert_lsn() pipelined behind each write transaction's COMMIT) and without it " +
			"(router-no-tokens: a second cluster started with --no-write-tokens)"},
}

// Workloads returns the default workload names, every one but the replica
// workloads, in report order. It returns a new slice on each call.
func Workloads() []string { return workloadNames(false) }

// ReplicaWorkloads returns the workloads that run on targets of their own
// (replica-read, write-token); a throwaway cluster then has a streaming
// replica per shard. It returns a new slice on each call.
func ReplicaWorkloads() []string { return workloadNames(true) }

func workloadNames(own bool) []string {
	var names []string
	for _, w := range workloads {
		if w.OwnTargets == own {
			names = append(names, w.Name)
		}
	}
	return names
}

// LookupWorkload returns the workload called name; the error lists the
// known names.
func LookupWorkload(name string) (Workload, error) {
	for _, w := range workloads {
		if w.Name == name {
			w.Args = slices.Clone(w.Args)
			return w, nil
		}
	}
	return Workload{}, fmt.Errorf("workload %q: want one of %s", name, strings.Join(append(Workloads(), ReplicaWorkloads()...), ", "))
}
