package netloop

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// TLS on a loop's connection. crypto/tls reads and writes a net.Conn; the
// connection hands it a transport (tlsTransport) whose reads and writes
// are the connection's own socket I/O, so a TLS session runs on its task
// like a plaintext one: its waits are the loop's (epoll or io_uring), its
// output is batched the same way, and no goroutine or copy sits between
// the socket and the session. Read, Write and Ready of a TLS connection go
// through tls.Conn; the socket-level methods (PeerOpen, Shutdown, the
// task's WaitReadable) still see the socket.
//
// Two things need care:
//   - tls.Conn buffers: decrypted data of a record the reader has not
//     taken yet, and records read from the socket past the one it
//     decrypted. A readiness check of the socket alone would miss them.
//     Ready asks tls.Conn for one byte with a transport that fails instead
//     of waiting (errWouldBlock, a temporary net.Error, which tls.Conn
//     returns without breaking the connection) and keeps the byte for the
//     next Read.
//   - The handshake costs a signature and a key exchange (about 0.1 ms
//     with ECDSA P-256, over 1 ms with RSA 2048). On the loop it would
//     stall every other session for that long, so it runs in Task.Block on
//     a goroutine of its own, with a transport that makes blocking system
//     calls on the descriptor (poll(2)) and touches none of the loop's
//     state. The loop shuts the socket down if it closes meanwhile.

// StartTLS runs a TLS server handshake on c with cfg and, when it
// succeeds, makes c a TLS connection: from then on Read and Write carry
// the decrypted stream. prefix is what the caller read of the handshake
// already (a client that began with its ClientHello), nil when it read the
// request to start TLS and nothing after it. c must be attached to t. The handshake runs on a goroutine of its own (see
// above), bounded by the caller's Shutdown, by the loop closing and by
// pollTimeout per wait. On failure c is left as it is; the caller closes
// it.
func (c *Conn) StartTLS(t *Task, cfg *tls.Config, prefix []byte) error {
	if c.tls != nil {
		return errors.New("netloop: TLS already started")
	}
	if c.task != t {
		panic("netloop: StartTLS on a connection not attached to the task")
	}
	if t.l.ring != nil {
		c.drain(t) // what was written (the answer to the request) goes out before the handshake's records
	}
	if c.fd < 0 {
		return net.ErrClosed
	}
	tr := &tlsTransport{c: c, blocking: true, prefix: prefix}
	tc := tls.Server(tr, cfg)
	var err error
	t.handshaking = c
	t.Block(func() { err = tc.HandshakeContext(context.Background()) })
	t.handshaking = nil
	tr.blocking, tr.prefix = false, nil
	// The handshake read the socket behind the loop's back: the next read
	// tries it before it waits for an edge.
	c.drained = false
	if err != nil {
		return err
	}
	c.tls = &tlsLayer{tc: tc, tr: tr}
	return nil
}

// TLS returns the state of c's TLS session, and false for a plaintext
// connection.
func (c *Conn) TLS() (tls.ConnectionState, bool) {
	if c.tls == nil {
		return tls.ConnectionState{}, false
	}
	return c.tls.tc.ConnectionState(), true
}

// tlsLayer is a TLS connection's state; its task's only.
type tlsLayer struct {
	tc *tls.Conn
	tr *tlsTransport
	// peek is a byte Ready read ahead, which the next Read returns first;
	// err is an error Ready met, which Reads return from then on.
	peek   [1]byte
	peeked bool
	err    error
}

func (s *tlsLayer) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.peeked {
		p[0] = s.peek[0]
		s.peeked = false
		return 1, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.tc.Read(p)
}

// ready reports whether a read would return at once, reading a byte ahead
// if it has to look.
func (s *tlsLayer) ready() bool {
	if s.peeked || s.err != nil {
		return true
	}
	s.tr.nonblock = true
	n, err := s.tc.Read(s.peek[:])
	s.tr.nonblock = false
	if n > 0 {
		s.peeked = true
		return true
	}
	var wb wouldBlock
	if errors.As(err, &wb) {
		return false
	}
	s.err = err
	return true
}

// closeNotify sends the close_notify alert if the socket has room for it
// now: a client that waits for it then sees a clean end (OpenSSL reports
// an end of stream without it as an error), and one that does not read is
// not waited for.
func (s *tlsLayer) closeNotify() {
	s.tr.nonblock = true
	_ = s.tc.CloseWrite()
	s.tr.nonblock = false
}

// wouldBlock is what a non-blocking transport returns for a read or write
// that would wait: a temporary net.Error, which tls.Conn returns without
// marking the connection broken (as for a read deadline).
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "netloop: the operation would wait" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var _ net.Error = wouldBlock{}

// tlsTransport is the net.Conn tls.Conn reads and writes: c's socket.
type tlsTransport struct {
	c *Conn
	// blocking: in the handshake, on Block's goroutine: system calls on
	// the descriptor that wait in poll(2).
	blocking bool
	// nonblock: a read or write that would wait fails with wouldBlock
	// instead (Ready, closeNotify).
	nonblock bool
	// prefix is what the handshake reads before the socket (StartTLS).
	prefix []byte
}

var _ net.Conn = (*tlsTransport)(nil)

func (tr *tlsTransport) Read(p []byte) (int, error) {
	switch {
	case len(tr.prefix) > 0:
		n := copy(p, tr.prefix)
		tr.prefix = tr.prefix[n:]
		return n, nil
	case tr.blocking:
		return tr.c.blockingIO(p, false)
	case tr.nonblock:
		return tr.c.tryRead(p)
	}
	return tr.c.read(p)
}

func (tr *tlsTransport) Write(p []byte) (int, error) {
	switch {
	case tr.blocking:
		return tr.c.blockingIO(p, true)
	case tr.nonblock:
		return tr.c.tryWrite(p)
	}
	return tr.c.write(p)
}

// Close does nothing: the Conn closes the socket (tls.Conn closes its
// transport only from its own Close, which is not used).
func (tr *tlsTransport) Close() error                     { return nil }
func (tr *tlsTransport) LocalAddr() net.Addr              { return nil }
func (tr *tlsTransport) RemoteAddr() net.Addr             { return tr.c.raddr }
func (tr *tlsTransport) SetDeadline(time.Time) error      { return nil }
func (tr *tlsTransport) SetReadDeadline(time.Time) error  { return nil }
func (tr *tlsTransport) SetWriteDeadline(time.Time) error { return nil }

// blockingIO reads into p, or writes all of p, with system calls on the
// descriptor, waiting in poll(2) when the socket is not ready. It touches
// no state but the descriptor (see StartTLS).
func (c *Conn) blockingIO(p []byte, write bool) (int, error) {
	done := 0
	for {
		if c.fd < 0 {
			return done, net.ErrClosed
		}
		var n int
		var err error
		if write {
			n, err = rawWrite(c.fd, p[done:])
		} else {
			n, err = rawRead(c.fd, p)
		}
		switch err {
		case nil:
			if !write {
				if n == 0 && len(p) > 0 {
					return 0, io.EOF
				}
				return n, nil
			}
			done += n
			if done == len(p) {
				return done, nil
			}
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			events := int16(unix.POLLIN)
			if write {
				events = unix.POLLOUT
			}
			if err := c.pollFD(events); err != nil {
				return done, err
			}
			continue
		}
		if write {
			return done, c.opError("write", err)
		}
		return 0, c.opError("read", err)
	}
}

// tryRead is read, failing with wouldBlock where read would wait.
func (c *Conn) tryRead(p []byte) (int, error) {
	for {
		if c.fd < 0 {
			return 0, net.ErrClosed
		}
		c.inEdge = false
		n, err := rawRead(c.fd, p)
		switch err {
		case nil:
			if n == 0 && len(p) > 0 {
				return 0, io.EOF
			}
			c.drained = n < len(p)
			c.sq.unanswered = 0 // the peer answered (see complete in ringio.go)
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			c.drained = true
			return 0, wouldBlock{}
		}
		return 0, c.opError("read", err)
	}
}

// tryWrite is write, failing with wouldBlock where write would wait (in
// io_uring mode: when the send queue has no room for p).
func (c *Conn) tryWrite(p []byte) (int, error) {
	if t := c.task; t != nil && t.l.ring != nil {
		if c.sq.pending()+len(p) > maxQueued {
			return 0, wouldBlock{}
		}
		return c.write(p)
	}
	done := 0
	for done < len(p) {
		if c.fd < 0 {
			return done, net.ErrClosed
		}
		n, err := rawWrite(c.fd, p[done:])
		if n > 0 {
			done += n
		}
		switch err {
		case nil, unix.EINTR:
			continue
		case unix.EAGAIN:
			return done, wouldBlock{}
		}
		return done, c.opError("write", err)
	}
	return done, nil
}
