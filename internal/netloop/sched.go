package netloop

import (
	"os"

	"golang.org/x/sys/unix"
)

// batchThread puts the calling thread (the loop's, locked to its
// goroutine) in the SCHED_BATCH policy and returns what undoes it.
//
// Why: a thread woken in the default policy (SCHED_OTHER) may preempt the
// task running on its CPU at once. For a proxy loaded by its own peers
// that is the wrong call: a server's reply wakes the loop while that
// server, or the client the loop serves next, is still running; the loop
// preempts it, runs the one reply, finds nothing else and sleeps again.
// One sleep and one wake-up per transaction is then most of the loop's CPU.
// A SCHED_BATCH thread is not preempted for (Linux: batch tasks do not
// preempt on wake-up; the tick and the running task's blocking decide),
// so the loop runs when the running task blocks, which the servers and
// clients do within microseconds, and finds several replies then.
// Measured on 2 cores, pgbench -S at 32 clients through the router, twelve
// alternating runs each: the default policy slept 0.7 to 1.3 times per
// transaction in 4 of 12 runs (42 to 48 µs of CPU per transaction), batch
// slept at most 0.43 times in all 12 (17.5 to 24.8 µs); docs/router.md has
// the rest. The expected cost, latency beside tasks that never block (the
// loop waits for their slice instead of preempting them), did not show:
// beside two CPU-bound loops the default policy fared worse (docs/router.md).
// Where the loop's CPU has spare time it runs at once as before.
//
// A thread already outside SCHED_OTHER (the operator ran the router under
// chrt, say) is left alone: restore is a no-op and batched is false.
func batchThread() (restore func(), batched bool, err error) {
	old, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return func() {}, false, os.NewSyscallError("sched_getattr", err)
	}
	if old.Policy != unix.SCHED_NORMAL {
		return func() {}, false, nil
	}
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_BATCH, Nice: old.Nice}, 0); err != nil {
		return func() {}, false, os.NewSyscallError("sched_setattr", err)
	}
	return func() {
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL, Nice: old.Nice}, 0)
	}, true, nil
}
