package netloop

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the io_uring mode of the loop. A task's read or write
// becomes an SQE; the loop submits every SQE of an iteration together with
// its epoll wait in one io_uring_enter, and resumes a task when its
// completion is reaped. Sends are non-blocking: they complete during that
// submission (one that finds the socket full waits for an EPOLLOUT edge
// and is issued again). Receives are not: one that finds no data stays in
// the kernel, which completes it when data arrives, so a task waiting for
// its client or its server costs no epoll event and no second call.
// Connections join the epoll set only when a task waits for an edge
// (WaitReadable, a full socket).
//
// Measured on a 2-core VM where one system call costs about 1 µs: pgbench
// -S through the router makes 4 socket calls per transaction in epoll mode
// (as PgBouncer does) and about one io_uring_enter in this mode.

// ioOp is a task's send or receive.
type ioOp struct {
	kind uint8 // opSend or opRecv
	c    *Conn
	buf  []byte // kept here so that it stays alive while the kernel has it
	done int    // bytes sent so far
	n    int
	err  error
}

// User data of the loop's own SQEs; tasks' SQEs carry their slot.
const (
	epollTag  = ^uint64(0)
	cancelTag = ^uint64(0) - 1

	cancelAny = 1 << 2 // IORING_ASYNC_CANCEL_ANY
)

// io runs a send or receive of p on c through the loop's ring and returns
// what the system call returned (a short count, 0 at end of stream).
func (t *Task) io(kind uint8, c *Conn, p []byte) (int, error) {
	if t.dead {
		return 0, net.ErrClosed
	}
	if c.l != nil && c.l != t.l {
		panic("netloop: a connection registered on one loop is used by a task of another")
	}
	t.op = ioOp{kind: kind, c: c, buf: p}
	t.state = stateIO
	t.yield(nil)
	op := t.op
	t.op = ioOp{}
	return op.n, op.err
}

// startIO issues t's operation: an SQE, or a wait for the edge that makes
// it worth issuing. An operation that needs no system call goes to the
// ready list (the caller may be resume, which must not resume).
func (l *Loop) startIO(t *Task) {
	op := &t.op
	c := op.c
	t.state = stateIO
	if c.fd < 0 {
		op.err = net.ErrClosed
		l.ready = append(l.ready, t)
		return
	}
	switch op.kind {
	case opRecv:
		if len(op.buf) == 0 {
			l.ready = append(l.ready, t)
			return
		}
		l.ring.next().prep(opRecv, c.fd, unsafe.Pointer(&op.buf[0]), len(op.buf), 0, uint64(t.slot))
	case opSend:
		rest := op.buf[op.done:]
		if len(rest) == 0 {
			op.n = op.done
			l.ready = append(l.ready, t)
			return
		}
		l.ring.next().prep(opSend, c.fd, unsafe.Pointer(&rest[0]), len(rest), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, uint64(t.slot))
	}
}

// awaitEdge parks t until c reports ev; then its operation is issued.
func (l *Loop) awaitEdge(t *Task, c *Conn, ev uint32) {
	if c.l == nil {
		if err := l.register(c); err != nil {
			t.op.err = c.opError("epoll_ctl", err)
			l.ready = append(l.ready, t)
			return
		}
	}
	c.inEdge = false
	c.waiter, c.waitEv = t, ev
	t.waiting = append(t.waiting[:0], c)
	t.state = stateWaitingIO
}

// complete handles one completion.
func (l *Loop) complete(e cqe) {
	switch e.userData {
	case epollTag:
		l.epollArmed = false
		if e.res > 0 {
			l.handleEvents(int(e.res))
		}
		return
	case cancelTag:
		return
	}
	if e.userData >= uint64(len(l.slots)) {
		return
	}
	t := l.slots[e.userData]
	if t == nil || t.state != stateIO {
		return
	}
	op := &t.op
	c := op.c
	if e.res < 0 {
		switch errno := unix.Errno(-e.res); {
		case t.dead:
			op.err = net.ErrClosed
			l.resume(t)
		case errno == unix.EINTR:
			l.startIO(t)
		case errno == unix.EAGAIN && op.kind == opRecv:
			// Not expected (the kernel waits for data), but harmless:
			// wait for an edge and ask again.
			l.awaitEdge(t, c, eventIn)
		case errno == unix.EAGAIN:
			l.awaitEdge(t, c, eventOut)
		default:
			name := "read"
			if op.kind == opSend {
				name = "write"
				op.n = op.done
			}
			op.err = c.opError(name, errno)
			l.resume(t)
		}
		return
	}
	if op.kind == opRecv {
		op.n = int(e.res)
		l.resume(t)
		return
	}
	op.done += int(e.res)
	if op.done < len(op.buf) {
		l.startIO(t)
		return
	}
	op.n = op.done
	l.resume(t)
}

// ringPoll is one iteration's kernel work in io_uring mode: submit the
// queued SQEs and the epoll wait, wait for a completion when block is set,
// and handle the completions.
func (l *Loop) ringPoll(block bool) {
	l.runReady()
	if !l.epollArmed {
		l.ring.next().prep(opEpollWait, l.epfd, unsafe.Pointer(&l.evs[0]), len(l.evs), 0, epollTag)
		l.epollArmed = true
	}
	err := l.ring.enter(block)
	if block {
		l.mu.Lock()
		l.sleeping = false
		l.mu.Unlock()
	}
	if err != nil {
		panic("netloop: " + err.Error())
	}
	l.cqes = l.ring.reap(l.cqes[:0])
	for _, e := range l.cqes {
		l.complete(e)
	}
	l.runReady()
}

// runReady resumes the tasks whose operation ended without the kernel.
func (l *Loop) runReady() {
	for len(l.ready) > 0 {
		t := l.ready[0]
		l.ready = l.ready[1:]
		if t.state == stateIO {
			l.resume(t)
		}
	}
	l.ready = l.ready[:0]
}

// cancelAll asks the kernel to end every operation in flight (a receive
// waiting for data, the epoll wait): the loop is closing.
func (l *Loop) cancelAll() {
	s := l.ring.next()
	s.opcode = opAsyncCancel
	s.opFlags = cancelAny
	s.userData = cancelTag
}

// closeRing cancels the epoll wait, waits until the kernel has let go of
// the events buffer, and closes the ring.
func (l *Loop) closeRing() {
	if l.epollArmed {
		s := l.ring.next()
		s.opcode = opAsyncCancel
		s.addr = epollTag
		s.userData = cancelTag
		for l.epollArmed {
			if err := l.ring.enter(true); err != nil {
				break
			}
			for _, e := range l.ring.reap(l.cqes[:0]) {
				if e.userData == epollTag {
					l.epollArmed = false
				}
			}
		}
	}
	l.ring.close()
}
