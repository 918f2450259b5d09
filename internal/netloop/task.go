package netloop

import "net"

// Task is one coroutine of a loop. Its methods are called only by its own
// code, on the loop.
type Task struct {
	l     *Loop
	start func(*Task)
	coro  *coro // the coroutine that runs it; nil until the loop begins it
	yield func(func()) bool

	state   taskState
	waiting []*Conn // the connections it waits for now
	dead    bool    // the loop is closing: waits fail
	slot    int     // id in the loop's tasksByID
	op      ioOp    // its receive in io_uring mode
	// handshaking is the connection whose TLS handshake its Block runs
	// (tls.go): the loop shuts it down when it closes.
	handshaking *Conn
}

type taskState uint8

const (
	stateRunning taskState = iota
	stateWaiting           // for a connection (or a Wake)
	stateParked            // for a Wake
	stateBlocked           // for its Block's function
	stateIO                // for its receive (io_uring mode)
	stateDone
)

// Park waits for a Wake. It may return early (a late Wake meant for an
// earlier Park): the caller checks its condition and parks again. It
// returns net.ErrClosed when the loop is closing.
func (t *Task) Park() error {
	if t.dead {
		return net.ErrClosed
	}
	t.state = stateParked
	t.yield(nil)
	if t.dead {
		return net.ErrClosed
	}
	return nil
}

// Wake resumes the task if it is parked or waiting on a connection (a
// waiting task re-checks its connection). Safe from any goroutine.
func (t *Task) Wake() {
	t.l.post(post{t: t})
}

// Block runs fn on a goroutine of its own and returns after fn has
// returned, serving the loop's other tasks meanwhile. fn must not use the
// task's connections.
func (t *Task) Block(fn func()) {
	t.yield(fn)
}

// WaitReadable waits until one of cs may have data to read (or an error or
// end of stream to report). It may return early; the caller reads to find
// out. It returns net.ErrClosed when the loop is closing.
func (t *Task) WaitReadable(cs ...*Conn) error {
	return t.wait(eventIn, cs...)
}

func (t *Task) wait(ev uint32, cs ...*Conn) error {
	if t.dead {
		return net.ErrClosed
	}
	for _, c := range cs {
		if c.fd < 0 {
			return net.ErrClosed
		}
		if c.l == nil {
			if err := t.l.register(c); err != nil {
				return c.opError("epoll_ctl", err)
			}
		} else if c.l != t.l {
			panic("netloop: a connection registered on one loop is used by a task of another")
		}
		c.waiter, c.waitEv = t, ev
		t.waiting = append(t.waiting, c)
	}
	t.state = stateWaiting
	t.yield(nil)
	if t.dead {
		return net.ErrClosed
	}
	return nil
}
