package netloop

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the io_uring mode of the loop: a task's read or write
// becomes an SQE, the loop submits every SQE of an iteration together with
// its epoll wait in one io_uring_enter, and the task resumes when its
// completion is reaped. A read of a socket known to be drained first waits
// for an edge, as in epoll mode, and is issued by the loop when the edge
// comes, so the task switches once per read either way.
//
// Measured on a 2-core VM where one system call costs about 1 µs: pgbench
// -S through the router makes 4 socket calls per transaction in epoll mode
// (as PgBouncer does) and a fraction of an io_uring_enter in this mode.

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
)

// io runs a send or receive of p on c through the loop's ring and returns
// what the system call returned (a short count, 0 at end of stream).
func (t *Task) io(kind uint8, c *Conn, p []byte) (int, error) {
	if t.dead {
		return 0, net.ErrClosed
	}
	if c.l == nil {
		if err := t.l.register(c); err != nil {
			return 0, c.opError("epoll_ctl", err)
		}
	} else if c.l != t.l {
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
		if c.drained && !c.inEdge && !c.hup {
			l.awaitEdge(t, c, eventIn)
			return
		}
		c.inEdge = false
		l.ring.next().prep(opRecv, c.fd, unsafe.Pointer(&op.buf[0]), len(op.buf), unix.MSG_DONTWAIT, uint64(t.slot))
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
		switch errno := unix.Errno(-e.res); errno {
		case unix.EINTR:
			l.startIO(t)
		case unix.EAGAIN:
			if op.kind == opRecv {
				c.drained = true
				l.startIO(t) // waits for an edge, unless one came meanwhile
			} else {
				l.awaitEdge(t, c, eventOut)
			}
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
		c.drained = op.n < len(op.buf)
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
