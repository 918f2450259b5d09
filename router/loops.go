package router

import (
	"sync/atomic"

	"github.com/shardline/shardline/internal/netloop"
)

// loops are the router's event loops, each on a thread of its own. A
// session runs on one loop for its whole life, and takes server
// connections only from that loop's pools: a connection's socket is
// registered with the loop that first waited on it, so pools are per loop
// and Config.PoolSize is split between them (poolShare).
//
// One loop is the default: on a machine whose cores the servers share, a
// second loop thread trades batching (completions served per wake-up) for
// less waiting for a CPU, and measured on 2 cores it cost more CPU per
// transaction than it saved (README, Performance). More loops are for a
// router with cores of its own.
type loops struct {
	all  []*netloop.Loop
	next atomic.Uint32 // round robin of new sessions
}

func newLoops(n int, cfg netloop.Config) (*loops, error) {
	ls := &loops{}
	for range n {
		l, err := netloop.New(cfg)
		if err != nil {
			for _, l := range ls.all {
				l.Close()
				l.Run() // returns at once, closing and with no tasks, and frees the loop's descriptors
			}
			return nil, err
		}
		ls.all = append(ls.all, l)
	}
	return ls, nil
}

// pick returns the loop for a new session and its index, in turn.
func (ls *loops) pick() (int, *netloop.Loop) {
	i := int(ls.next.Add(1)-1) % len(ls.all)
	return i, ls.all[i]
}

// close asks every loop to end its tasks.
func (ls *loops) close() {
	for _, l := range ls.all {
		l.Close()
	}
}

// IOUring reports whether every loop batches its socket system calls
// through io_uring.
func (ls *loops) IOUring() bool { return ls.every((*netloop.Loop).IOUring) }

// SchedBatch reports whether every loop's thread runs in SCHED_BATCH.
func (ls *loops) SchedBatch() bool { return ls.every((*netloop.Loop).SchedBatch) }

func (ls *loops) every(f func(*netloop.Loop) bool) bool {
	for _, l := range ls.all {
		if !f(l) {
			return false
		}
	}
	return true
}

// Count is how many loops there are.
func (ls *loops) Count() int { return len(ls.all) }

// Stats sums the loops' counts.
func (ls *loops) Stats() netloop.Stats {
	var s netloop.Stats
	for _, l := range ls.all {
		s.Sleeps += l.Stats().Sleeps
	}
	return s
}

// poolShare is loop i's share of size server connections per member when
// n loops split them: size/n, and one more for the first size%n loops.
func poolShare(size, n, i int) int {
	share := size / n
	if i < size%n {
		share++
	}
	return share
}
