package netloop

// Stats counts what the loop did while it had nothing to run.
type Stats struct {
	// Sleeps counts waits in the kernel that could sleep: each one that
	// did costs a wake-up (io_uring mode; epoll mode counts epoll_wait
	// calls without a timeout).
	Sleeps uint64
}

// Stats returns the loop's counts so far; any goroutine may call it.
func (l *Loop) Stats() Stats {
	return Stats{Sleeps: l.sleeps.Load()}
}
