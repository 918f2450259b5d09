// Package chaos holds Shardline's drills: workloads that check the
// invariants of ARCHITECTURE.md while faults are injected, and report what
// they saw. Drills are commands (`shardline drill ...`); CI runs short ones.
//
// Implemented: the replica-lag drill (RunReplicaLag) and the isolation
// drill (RunIsolation). Kill, stop and TCP fault drills for moves and
// failover come with those features.
package chaos
