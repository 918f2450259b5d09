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
}

// Workloads returns every workload name in report order. It returns a new
// slice on each call.
func Workloads() []string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.Name
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
	return Workload{}, fmt.Errorf("workload %q: want one of %s", name, strings.Join(Workloads(), ", "))
}
