package netloop

import "iter"

// maxIdleCoros bounds the coroutines a loop keeps for its next tasks (each
// keeps the stack its last task grew).
const maxIdleCoros = 64

// coro is a coroutine that runs tasks one after another. A task that
// returns leaves its coroutine idle for the loop's next task, so starting
// a task (a client connection) makes no coroutine (iter.Pull's goroutine
// and its six allocations) and grows no new stack: under connection churn
// (pgbench -C) those were about 5% of the router's CPU (pprof: newstack
// 2.7%, and a sixth of the allocations per connection).
type coro struct {
	next func() (func(), bool)
	stop func()
	task *Task // the task it runs now; set before each first resume
}

func newCoro() *coro {
	c := &coro{}
	c.next, c.stop = iter.Pull(func(yield func(func()) bool) {
		for {
			t := c.task
			t.yield = yield
			t.start(t)
			t.state = stateDone
			c.task = nil
			if !yield(nil) { // idle until the next task, or stopped
				return
			}
		}
	})
	return c
}

// takeCoro returns an idle coroutine for t, or a new one.
func (l *Loop) takeCoro(t *Task) *coro {
	var c *coro
	if n := len(l.idleCoros); n > 0 {
		c = l.idleCoros[n-1]
		l.idleCoros[n-1] = nil
		l.idleCoros = l.idleCoros[:n-1]
	} else {
		c = newCoro()
	}
	c.task = t
	return c
}

// putCoro keeps c, whose task has returned, for a later task, or stops it
// when enough are kept.
func (l *Loop) putCoro(c *coro) {
	if len(l.idleCoros) < maxIdleCoros {
		l.idleCoros = append(l.idleCoros, c)
		return
	}
	c.stop()
}

// stopCoros ends the idle coroutines; loop goroutine only, once no task
// runs.
func (l *Loop) stopCoros() {
	for _, c := range l.idleCoros {
		c.stop()
	}
	l.idleCoros = nil
}
