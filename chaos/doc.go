// Package chaos will hold Shardline's fault drills: a workload with a ledger
// of acknowledged writes, fault injectors (killed and stopped servers, TCP
// faults) and checkers of the invariants in ARCHITECTURE.md. Nothing is
// implemented yet; the README's feature table says so.
package chaos
