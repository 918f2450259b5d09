package bench

import "fmt"

// Workloads: pgbench builtin scripts by their pgbench names.
const (
	// WorkloadSelectOnly is one primary-key SELECT on pgbench_accounts per
	// transaction (pgbench -S).
	WorkloadSelectOnly = "select-only"
	// WorkloadSimpleUpdate updates pgbench_accounts, reads it back and
	// inserts into pgbench_history (pgbench -N).
	WorkloadSimpleUpdate = "simple-update"
	// WorkloadTPCBLike is pgbench's default TPC-B-like transaction.
	WorkloadTPCBLike = "tpcb-like"
)

// workloadArgs returns the pgbench arguments that select workload w.
// A new workload (a custom script with -f, say) is one more case here.
func workloadArgs(w string) ([]string, error) {
	switch w {
	case WorkloadSelectOnly:
		return []string{"-S"}, nil
	case WorkloadSimpleUpdate:
		return []string{"-N"}, nil
	case WorkloadTPCBLike:
		return []string{"-b", "tpcb-like"}, nil
	}
	return nil, fmt.Errorf("workload %q: want %s, %s or %s", w, WorkloadSelectOnly, WorkloadSimpleUpdate, WorkloadTPCBLike)
}
