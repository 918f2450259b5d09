package netloop

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listener is a listening socket the loop accepts on.
type listener struct {
	fd     int
	accept func(*Conn)
	// noDelay is how accepted sockets get TCP_NODELAY (see setNoDelay).
	noDelay noDelay
}

// noDelay is how a listener's accepted sockets get TCP_NODELAY.
type noDelay uint8

const (
	// noDelayUnknown: set on the listener; whether accepted sockets
	// inherit it is checked on the first one.
	noDelayUnknown noDelay = iota
	// noDelayInherited: accepted sockets have it from the listener
	// (Linux clones them from it), so accepting costs no call for it.
	noDelayInherited
	// noDelayPerSocket: it is set on every accepted socket.
	noDelayPerSocket
	// noDelayNone: not a TCP socket.
	noDelayNone
)

// Listen takes over ln's socket, as Wrap does a connection's: the loop
// accepts connections on it and calls accept for each, on the loop (accept
// typically starts a task with Go). ln is closed, so that Go's poller lets
// go of the socket: the loop's duplicate shares its open file, and while
// ln is open every arriving connection also wakes the thread that waits in
// Go's poller, which finds nothing to do (measured with pgbench -C: one
// wake-up of another thread per connection, a fifth of the router's CPU).
// Accepted sockets are non-blocking with TCP_NODELAY set. The loop stops
// accepting, and closes the socket, when it closes.
func (l *Loop) Listen(ln net.Listener, accept func(*Conn)) error {
	fd, err := dupSocket(ln)
	if err != nil {
		return err
	}
	_ = ln.Close() // removes it from Go's epoll set; the duplicate keeps the socket
	lis := &listener{fd: fd, accept: accept}
	// Set on the listener, TCP_NODELAY comes with every accepted socket,
	// which saves a setsockopt per connection (a churned connection makes
	// about ten calls in all).
	if unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) != nil {
		lis.noDelay = noDelayNone
	}
	l.mu.Lock()
	closing := l.closing
	if !closing {
		l.newListeners = append(l.newListeners, lis)
	}
	l.mu.Unlock()
	if closing {
		unix.Close(fd)
		return net.ErrClosed
	}
	l.wake()
	return nil
}

// addListener registers lis with the loop's epoll set; loop goroutine only.
func (l *Loop) addListener(lis *listener) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(lis.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lis.fd, &ev); err != nil {
		unix.Close(lis.fd)
		return
	}
	for lis.fd >= len(l.listeners) {
		l.listeners = append(l.listeners, nil)
	}
	l.listeners[lis.fd] = lis
	l.acceptAll(lis) // connections that queued before the registration
}

// acceptAll accepts every queued connection (edge-triggered: until EAGAIN).
func (l *Loop) acceptAll(lis *listener) {
	for {
		// syscall's Accept4, not x/sys/unix's: the latter asks the
		// kernel for the socket's protocol on every IPv4 accept (to tell
		// L2TP apart), one more call per connection.
		fd, sa, err := syscall.Accept4(lis.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
		case unix.EINTR, unix.ECONNABORTED:
			continue
		default:
			// EAGAIN: all taken. EMFILE, ENFILE, ENOBUFS: out of
			// resources; the next connection's edge retries.
			return
		}
		lis.setNoDelay(fd)
		lis.accept(&Conn{fd: fd, raddr: sockaddrAddr(sa)})
	}
}

// setNoDelay gives the accepted socket fd TCP_NODELAY: nothing to do once
// the first accepted socket showed that they inherit it from the listener.
func (lis *listener) setNoDelay(fd int) {
	switch lis.noDelay {
	case noDelayInherited, noDelayNone:
		return
	case noDelayUnknown:
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err == nil && v != 0 {
			lis.noDelay = noDelayInherited
			return
		}
		lis.noDelay = noDelayPerSocket
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

// closeListeners stops accepting; loop goroutine only.
func (l *Loop) closeListeners() {
	for i, lis := range l.listeners {
		if lis != nil {
			unix.Close(lis.fd)
			l.listeners[i] = nil
		}
	}
}

func sockaddrAddr(sa syscall.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return &net.TCPAddr{}
}

// dupSocket duplicates the socket of a net.Conn or net.Listener; the
// duplicate is non-blocking and close-on-exec.
func dupSocket(v any) (int, error) {
	sc, ok := v.(syscall.Conn)
	if !ok {
		return -1, errors.New("netloop: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl", dupErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}
