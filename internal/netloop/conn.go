package netloop

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	eventIn  = unix.EPOLLIN
	eventOut = unix.EPOLLOUT
)

// pollTimeout bounds a wait outside any task (see Conn.Attach).
const pollTimeout = 10 * time.Second

// Conn is a non-blocking socket served by a loop. One task uses it at a
// time (Attach); its reads and writes wait on that task's loop. Without a
// task (Detach) they wait in poll(2), at most pollTimeout, for the rare
// write outside a session (a Terminate on close).
type Conn struct {
	fd    int
	raddr net.Addr

	l      *Loop // the loop whose epoll set holds fd; nil until the first wait
	task   *Task // the task using it now
	waiter *Task // the task waiting for it now
	waitEv uint32

	// drained: the last read returned less than asked (or nothing), so
	// the socket had no more data then; inEdge: the loop has seen data
	// arrive since (an edge-triggered EPOLLIN). A read of a drained socket
	// without a new edge waits first instead of failing with EAGAIN: the
	// kernel signals every arrival after a short read (even data that came
	// in during the read, when it moves to the receive queue). hup: the
	// loop has seen the peer's end of stream or an error, which is not an
	// arrival: a short read can return the last data before it, and no
	// edge follows; such a socket is always read.
	drained bool
	inEdge  bool
	hup     bool

	sq sendq // output in io_uring mode

	// tls is the TLS layer once StartTLS succeeded (tls.go): Read, Write
	// and Ready go through it. nil for a plaintext connection.
	tls *tlsLayer

	mu sync.Mutex // Shutdown against Close
}

// Wrap takes over nc's socket: Go's poller lets go of it and the loop
// serves it. nc is closed; its socket options (TCP_NODELAY) stay.
func Wrap(nc net.Conn) (*Conn, error) {
	fd, err := dupSocket(nc)
	if err != nil {
		return nil, err
	}
	raddr := nc.RemoteAddr()
	_ = nc.Close() // removes it from Go's epoll set; the duplicate keeps the socket
	return &Conn{fd: fd, raddr: raddr}, nil
}

// Attach makes t the connection's user: its waits switch to t's loop.
func (c *Conn) Attach(t *Task) { c.task = t }

// Detach leaves the connection without a user (idle in a pool). In
// io_uring mode it first waits until what the user wrote is sent.
func (c *Conn) Detach() {
	if t := c.task; t != nil && t.l.ring != nil {
		c.drain(t)
	}
	c.task = nil
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// Read reads what the socket has, waiting for data if it has none. On a
// TLS connection it reads the decrypted stream.
func (c *Conn) Read(p []byte) (int, error) {
	if c.tls != nil {
		return c.tls.read(p)
	}
	return c.read(p)
}

// read is Read on the socket itself.
func (c *Conn) read(p []byte) (int, error) {
	if t := c.task; t != nil && t.l.ring != nil {
		n, err := t.recv(c, p) // net.ErrClosed once closed
		if err == nil && n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, err
	}
	for {
		if c.fd < 0 {
			return 0, net.ErrClosed
		}
		if c.drained && !c.inEdge && !c.hup && c.task != nil {
			if err := c.task.wait(eventIn, c); err != nil {
				return 0, err
			}
			continue
		}
		c.inEdge = false
		n, err := rawRead(c.fd, p)
		switch err {
		case nil:
			if n == 0 && len(p) > 0 {
				return 0, io.EOF
			}
			c.drained = n < len(p)
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			c.drained = true
			if c.task == nil {
				if err := c.await(eventIn); err != nil {
					return 0, err
				}
			}
			continue
		}
		return 0, c.opError("read", err)
	}
}

// Write writes all of p, waiting for room when the socket is full. On a
// TLS connection it writes p encrypted.
func (c *Conn) Write(p []byte) (int, error) {
	if c.tls != nil {
		return c.tls.tc.Write(p)
	}
	return c.write(p)
}

// write is Write on the socket itself.
func (c *Conn) write(p []byte) (int, error) {
	if t := c.task; t != nil && t.l.ring != nil {
		n, _, err := c.ringWrite(t, p, false) // net.ErrClosed once closed
		return n, err
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
			if err := c.await(eventOut); err != nil {
				return done, err
			}
			continue
		}
		return done, c.opError("write", err)
	}
	return done, nil
}

// WriteUntilReadable writes p like Write, except that while it waits for
// room it returns early once the connection has data to read: it reports
// what it wrote and whether it stopped for that. A writer that reads what
// the peer sent and goes on writing so never waits on a peer that waits
// for it (a server sending a notice per row of a COPY it is sent). On a
// TLS connection (a client's: servers' are plaintext) it is Write.
func (c *Conn) WriteUntilReadable(p []byte) (n int, readable bool, err error) {
	if c.tls != nil {
		n, err := c.Write(p)
		return n, false, err
	}
	if t := c.task; t != nil && t.l.ring != nil {
		return c.ringWrite(t, p, true)
	}
	if c.task == nil {
		n, err := c.write(p)
		return n, false, err
	}
	for n < len(p) {
		if c.fd < 0 {
			return n, false, net.ErrClosed
		}
		m, err := rawWrite(c.fd, p[n:])
		if m > 0 {
			n += m
		}
		switch err {
		case nil, unix.EINTR:
			continue
		case unix.EAGAIN:
			// The socket is registered edge-triggered before the peek
			// (wait registers it), so data that comes after the peek
			// still wakes the wait.
			if c.l == nil {
				if err := c.task.l.register(c); err != nil {
					return n, false, c.opError("epoll_ctl", err)
				}
			}
			if c.Ready() {
				return n, true, nil
			}
			if err := c.task.wait(eventIn|eventOut, c); err != nil {
				return n, false, err
			}
			continue
		}
		return n, false, c.opError("write", err)
	}
	return n, false, nil
}

func (c *Conn) await(ev uint32) error {
	if c.task != nil {
		return c.task.wait(ev, c)
	}
	events := int16(unix.POLLIN)
	if ev == eventOut {
		events = unix.POLLOUT
	}
	return c.pollFD(events)
}

// pollFD waits in poll(2), at most pollTimeout, until the socket has
// events (or an error or end of stream). It touches no state but the
// descriptor, so a goroutine other than the loop's may call it.
func (c *Conn) pollFD(events int16) error {
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}}
	for {
		n, err := unix.Poll(fds, int(pollTimeout/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return c.opError("poll", err)
		}
		if n == 0 {
			return c.opError("poll", os.ErrDeadlineExceeded)
		}
		return nil
	}
}

// PeerOpen reports, without waiting, whether the socket has nothing to
// read and no end of stream: an idle server connection that is still open.
// It looks at the socket only (on a TLS connection too).
func (c *Conn) PeerOpen() bool {
	if c.fd < 0 {
		return false
	}
	var b [1]byte
	_, _, err := unix.Recvfrom(c.fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == unix.EAGAIN
}

// Shutdown ends both directions of the connection without closing it: the
// user's reads see end of stream. Safe from any goroutine.
func (c *Conn) Shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd >= 0 {
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	}
}

// Close closes the socket (which also leaves the loop's epoll set). Only
// the connection's user may call it. In io_uring mode it first waits until
// what the user wrote is sent (unless the loop is closing). A TLS
// connection first sends its close_notify alert, unless the socket is full.
func (c *Conn) Close() error {
	if c.tls != nil && c.fd >= 0 {
		c.tls.closeNotify()
	}
	if t := c.task; t != nil && t.l.ring != nil && c.fd >= 0 {
		c.drain(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return net.ErrClosed
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

func (c *Conn) opError(op string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: err}
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: os.NewSyscallError(op, err)}
}

// Ready reports, without waiting, whether a read would return at once:
// there is data, end of stream or an error. On a TLS connection that is
// decrypted data (or an error) TLS holds or a whole record on the socket.
func (c *Conn) Ready() bool {
	if c.fd < 0 {
		return true
	}
	if c.tls != nil {
		return c.tls.ready()
	}
	var b [1]byte
	_, _, err := unix.Recvfrom(c.fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err != unix.EAGAIN
}

// rawRead and rawWrite are recv(2) and send(2) on a non-blocking socket
// without telling the Go scheduler: they never block, and the scheduler's
// bookkeeping for a system call that might (handing the P to another
// thread when the call outlasts a sysmon tick, which a send that wakes the
// peer can) costs more than the call. recvfrom and sendto skip the
// file-system layer that read and write go through; MSG_NOSIGNAL turns a
// send to a closed peer into EPIPE without a SIGPIPE.
func rawRead(fd int, p []byte) (int, error) { return rawIO(unix.SYS_RECVFROM, fd, p, 0) }
func rawWrite(fd int, p []byte) (int, error) {
	return rawIO(unix.SYS_SENDTO, fd, p, unix.MSG_NOSIGNAL)
}

// rawIO is recvfrom(2) or sendto(2) with no address.
func rawIO(trap uintptr, fd int, p []byte, flags uintptr) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)), flags, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
