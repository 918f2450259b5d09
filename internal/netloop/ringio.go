package netloop

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the io_uring mode of the loop. A task's read becomes an
// SQE, and so does a connection's queued output (sendq.go); the loop
// submits every SQE of an iteration together with its epoll wait in one
// io_uring_enter, and resumes a task when its completion is reaped. Sends
// are non-blocking: they complete during that submission (one that finds
// the socket full waits for room with a one-shot IORING_OP_POLL_ADD and is
// issued again). Receives are not: one that finds no data stays in the
// kernel, which completes it when data arrives, so a task waiting for its
// client or its server costs no epoll event and no second call.
// Connections join the epoll set only for WaitReadable.
//
// Measured on a 2-core VM where one system call costs about 1 µs: pgbench
// -S through the router makes 4 socket calls per transaction in epoll mode
// (as PgBouncer does) and about one io_uring_enter in this mode.

// ioOp is a task's receive.
type ioOp struct {
	c   *Conn
	buf []byte // kept here so that it stays alive while the kernel has it
	n   int
	err error
}

// User data of the loop's own SQEs; tasks' receives carry their slot,
// connections' sends connTag and theirs.
const (
	epollTag  = ^uint64(0)
	cancelTag = ^uint64(0) - 1

	cancelAny = 1 << 2 // IORING_ASYNC_CANCEL_ANY

	taskPollTag = 1 << 60 // a task's wait for data after a receive found none
)

// recv receives into p from c through the loop's ring and returns what
// the system call returned (0 at end of stream).
func (t *Task) recv(c *Conn, p []byte) (int, error) {
	if t.dead {
		return 0, net.ErrClosed
	}
	if c.l != nil && c.l != t.l {
		panic("netloop: a connection registered on one loop is used by a task of another")
	}
	t.op = ioOp{c: c, buf: p}
	t.state = stateIO
	t.yield(nil)
	op := t.op
	t.op = ioOp{}
	return op.n, op.err
}

// startIO issues t's receive: an SQE, unless it needs no system call; then
// t goes to the ready list (the caller may be resume, which must not
// resume).
func (l *Loop) startIO(t *Task) {
	op := &t.op
	c := op.c
	t.state = stateIO
	switch {
	case c.fd < 0:
		op.err = net.ErrClosed
		l.ready = append(l.ready, t)
	case len(op.buf) == 0:
		l.ready = append(l.ready, t)
	default:
		s := l.ring.next()
		s.prep(opRecv, c.fd, unsafe.Pointer(&op.buf[0]), len(op.buf), 0, uint64(t.slot))
		if c.sq.unanswered > 0 {
			// The peer has not answered what it was sent (the send is
			// ahead of this receive in the ring): trying the receive
			// during the submission would find nothing, so go straight
			// to the kernel's poll. Data that came meanwhile (a client
			// that pipelines) completes that poll at once.
			s.ioprio = recvPollFirst
		}
	}
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
	if e.userData&taskPollTag != 0 {
		if t := l.tasksByID.get(e.userData &^ taskPollTag); t != nil && t.state == stateIO {
			if t.dead {
				t.op.err = net.ErrClosed
				l.resume(t)
			} else {
				l.startIO(t)
			}
		}
		return
	}
	if e.userData&connPollTag != 0 {
		l.writable(e.userData &^ connPollTag)
		return
	}
	if e.userData&connTag != 0 {
		l.sendDone(e.userData&^connTag, e.res)
		return
	}
	t := l.tasksByID.get(e.userData)
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
		case errno == unix.EAGAIN:
			// Not expected (the kernel waits for data), but harmless: a
			// one-shot poll, as for a full socket (sendq.go), then again.
			l.ring.next().prep(opPollAdd, c.fd, nil, 0, unix.POLLIN, taskPollTag|uint64(t.slot))
		default:
			op.err = c.opError("read", errno)
			l.resume(t)
		}
		return
	}
	op.n = int(e.res)
	if op.n > 0 {
		c.sq.unanswered = 0 // the peer answered: it has read what it was sent
	}
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
	var minComplete uint32
	bounded := false
	if block {
		l.sleeps.Add(1)
		// Sends complete during the submission, so the wait is for one
		// completion more: the answer to what was sent, in the same
		// system call. Unless something waits for sends themselves to
		// complete (a drain, or output queued behind a send in flight).
		// A send the socket took only part of (or none of) needs the
		// loop to go on, and the answer may need the rest: when a send
		// may have come back short, the wait is bounded, which hands
		// the loop its completion. A timer costs the wait several µs on
		// a VM, so only then.
		minComplete = 1
		if l.draining == 0 && l.backlogged == 0 && l.sendsUnreaped > 0 {
			minComplete += uint32(l.sendsUnreaped)
			bounded = l.riskySends > 0
		}
	}
	err := l.ring.enter(minComplete, bounded)
	if block {
		l.mu.Lock()
		l.sleeping = false
		l.mu.Unlock()
	}
	if err != nil {
		panic("netloop: " + err.Error())
	}
	l.cqes = l.ring.reap(l.cqes[:0])
	l.sendsUnreaped, l.riskySends = 0, 0
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
			if err := l.ring.enter(1, false); err != nil {
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
