package netloop

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// In io_uring mode a write does not wait for its send: Write copies the
// bytes to the connection's send queue and returns, and the loop sends
// the queue with the iteration's other SQEs. A session that writes to its
// server and then reads the answer so gets both into one io_uring_enter,
// instead of one to send and one more, after it resumed, to receive.
//
// Rules that keep this safe:
//   - one send per connection is in flight; bytes written meanwhile wait
//     in queued and go out, in order, when it completes;
//   - the kernel reads inflight until the completion is reaped, so the
//     queue keeps it (and the loop keeps the connection, in sending) until
//     then;
//   - an SQE names a file descriptor when it is submitted, so a connection
//     is never closed or detached (handed to a pool, which other goroutines
//     may close) with output still queued: Close and Detach wait until it
//     is sent, as a blocking write would have;
//   - a writer that has maxQueued bytes queued waits until half of them
//     are sent (a slow client does not grow the router's memory).

// maxQueued bounds a connection's queued output.
const maxQueued = 256 << 10

// connTag marks the user data of a connection's send, connPollTag that of
// its wait for room: the tag | its id in the loop's sending slots.
const (
	connTag     = 1 << 62
	connPollTag = 1 << 61
)

// sendq is a connection's output in io_uring mode; loop goroutine only.
type sendq struct {
	slot     int    // 1 + id in the loop's sending slots while a send is in flight, else 0
	inflight []byte // the in-flight send's bytes (from off on)
	off      int
	queued   []byte // written since inflight was issued
	epoch    uint64 // the ring's submit count when inflight's SQE was queued
	full     bool   // the socket was full: inflight goes again when it has room
	err      error  // a send failed: writes fail with it from now on
	drainer  *Task  // a task waiting until pending() <= limit
	limit    int
	// unanswered is what was sent since data last came from the peer,
	// each send charged its length plus sendOverhead (ringPoll).
	unanswered int
}

// A send may come back short, or not at all, when the socket's buffer is
// full: the peer has not read what it was sent before. A peer that answers
// has read the request (PostgreSQL's protocol is request and answer), so
// a send that follows an answer with little sent since cannot find the
// buffer full: the smallest send buffer, a new TCP socket's, is 16 KiB.
// Sends past safeUnanswered may, and the wait after them is bounded
// (ringPoll). sendOverhead charges each send for the kernel's bookkeeping,
// which the buffer counts too (a Unix socket counts the whole skb).
const (
	safeUnanswered = 8 << 10
	sendOverhead   = 512
)

func (q *sendq) pending() int { return len(q.inflight) - q.off + len(q.queued) }

// ringWrite queues p on c for the loop to send, waiting for room when
// maxQueued bytes are queued. With untilReadable it returns instead of
// waiting when c has data to read, and wakes from its wait for room when
// data comes (see WriteUntilReadable).
func (c *Conn) ringWrite(t *Task, p []byte, untilReadable bool) (int, bool, error) {
	q := &c.sq
	l := t.l
	done := 0
	for len(p) > 0 {
		if q.err != nil {
			return done, false, q.err
		}
		if c.fd < 0 {
			return done, false, net.ErrClosed
		}
		room := maxQueued - q.pending()
		if room <= 0 {
			if untilReadable {
				if c.l == nil {
					if err := l.register(c); err != nil {
						return done, false, c.opError("epoll_ctl", err)
					}
				}
				if c.Ready() {
					return done, true, nil
				}
			}
			if err := t.awaitDrain(c, maxQueued/2, untilReadable); err != nil {
				return done, false, err
			}
			continue
		}
		n := min(room, len(p))
		if q.queued == nil {
			q.queued = l.getBuf()
		}
		if q.inflight != nil && len(q.queued) == 0 {
			l.backlogged++
		}
		q.queued = append(q.queued, p[:n]...)
		if q.inflight == nil {
			l.issueSend(c)
		}
		p, done = p[n:], done+n
	}
	return done, false, nil
}

// awaitDrain parks t until c has at most limit bytes queued (or its send
// failed), or with readable also until c may have data to read.
func (t *Task) awaitDrain(c *Conn, limit int, readable bool) error {
	q := &c.sq
	q.drainer, q.limit = t, limit
	t.l.draining++
	var err error
	if readable {
		err = t.wait(eventIn, c)
	} else {
		err = t.Park()
	}
	t.l.draining--
	q.drainer = nil
	return err
}

// drain waits until everything c's task wrote has been sent (or a send
// failed, or the loop closes); then nothing of the loop refers to c's
// descriptor any more.
func (c *Conn) drain(t *Task) {
	q := &c.sq
	for q.pending() > 0 && q.err == nil && c.fd >= 0 {
		if t.awaitDrain(c, 0, false) != nil {
			break
		}
	}
	if q.pending() > 0 {
		// The loop is closing: give up what is not sent, but submit what
		// is in flight while the descriptor is still c's.
		t.l.dropQueued(c)
		c.submitNow(t.l)
	}
}

// submitNow submits c's in-flight send if it is still only in the ring.
func (c *Conn) submitNow(l *Loop) {
	if c.sq.inflight != nil && c.sq.epoch == l.ring.epoch {
		_ = l.ring.enter(0, false)
	}
}

// issueSend makes the queued bytes the in-flight send.
func (l *Loop) issueSend(c *Conn) {
	q := &c.sq
	q.inflight, q.off, q.queued = q.queued, 0, nil
	if q.slot == 0 {
		q.slot = l.sending.add(c) + 1
	}
	l.sendInflight(c)
}

func (l *Loop) sendInflight(c *Conn) {
	q := &c.sq
	rest := q.inflight[q.off:]
	l.ring.next().prep(opSend, c.fd, unsafe.Pointer(&rest[0]), len(rest), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, connTag|uint64(q.slot-1))
	q.epoch = l.ring.epoch
	l.sendsUnreaped++
	q.unanswered += len(rest) + sendOverhead
	if q.unanswered > safeUnanswered {
		l.riskySends++
	}
}

// sendDone handles the completion of c's in-flight send.
func (l *Loop) sendDone(slot uint64, res int32) {
	c := l.sending.get(slot)
	if c == nil {
		return
	}
	q := &c.sq
	switch {
	case c.fd < 0 || c.task == nil && res >= 0 && q.off+int(res) < len(q.inflight):
		// Closed, or detached by a closing loop with the rest unsent.
		l.endSends(c)
	case res >= 0:
		q.off += int(res)
		if q.off < len(q.inflight) {
			l.sendInflight(c)
			return
		}
		l.putBuf(q.inflight)
		q.inflight, q.off = nil, 0
		if len(q.queued) > 0 {
			l.backlogged--
			l.issueSend(c)
		} else {
			l.freeConnSlot(c)
		}
	case unix.Errno(-res) == unix.EINTR:
		l.sendInflight(c)
		return
	case unix.Errno(-res) == unix.EAGAIN:
		// A one-shot poll completes at once if the socket has room by
		// now, so no wake-up is missed between the send and the poll.
		q.full = true
		l.ring.next().prep(opPollAdd, c.fd, nil, 0, unix.POLLOUT, connPollTag|uint64(q.slot-1))
		return
	default:
		q.err = c.opError("write", unix.Errno(-res))
		l.endSends(c)
	}
	if w := q.drainer; w != nil && (w.state == stateParked || w.state == stateWaiting) && (q.err != nil || q.pending() <= q.limit) {
		l.resume(w)
	}
}

// writable resends the in-flight bytes of the connection in slot once its
// socket has room (or an error to report).
func (l *Loop) writable(slot uint64) {
	c := l.sending.get(slot)
	if c == nil || !c.sq.full {
		return
	}
	c.sq.full = false
	if c.fd < 0 {
		l.endSends(c)
		return
	}
	l.sendInflight(c)
}

// endSends drops c's output and frees its slot.
func (l *Loop) endSends(c *Conn) {
	q := &c.sq
	l.dropQueued(c)
	l.putBuf(q.inflight)
	q.inflight, q.off, q.full = nil, 0, false
	l.freeConnSlot(c)
}

// dropQueued drops the output queued behind c's send in flight.
func (l *Loop) dropQueued(c *Conn) {
	q := &c.sq
	if q.inflight != nil && len(q.queued) > 0 {
		l.backlogged--
	}
	l.putBuf(q.queued)
	q.queued = nil
}

func (l *Loop) freeConnSlot(c *Conn) {
	if c.sq.slot > 0 {
		l.sending.remove(c.sq.slot - 1)
		c.sq.slot = 0
	}
}

// getBuf and putBuf recycle send buffers, so that an idle connection holds
// none.
func (l *Loop) getBuf() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, 0, 4096)
}

func (l *Loop) putBuf(b []byte) {
	if b != nil && cap(b) <= 64<<10 && len(l.bufs) < 256 {
		l.bufs = append(l.bufs, b[:0])
	}
}
