package netloop

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// forModes runs test in epoll mode and, where the kernel offers it, in
// io_uring mode.
func forModes(t *testing.T, test func(*testing.T, Config)) {
	t.Run("epoll", func(t *testing.T) { test(t, Config{NoIOUring: true}) })
	t.Run("io_uring", func(t *testing.T) {
		l, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		uses := l.IOUring()
		l.Close()
		l.Run()
		if !uses {
			t.Skip("the kernel offers no io_uring with IORING_OP_EPOLL_WAIT")
		}
		test(t, Config{})
	})
}

func startLoop(t *testing.T, cfg Config) *Loop {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := run(l)
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l
}

// run runs l on a goroutine; the channel closes when Run returns.
func run(l *Loop) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run()
	}()
	return done
}

// serve accepts connections and runs handle for each as a task.
func serve(t *testing.T, l *Loop, handle func(*Task, *Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c, err := Wrap(nc)
			if err != nil {
				t.Error(err)
				return
			}
			l.Go(func(task *Task) {
				defer c.Close()
				c.Attach(task)
				handle(task, c)
			})
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echo answers each line with the line upper-cased.
func echo(_ *Task, c *Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := c.Write([]byte(strings.ToUpper(line))); err != nil {
			return
		}
	}
}

func TestEchoManyClients(t *testing.T) { forModes(t, testEchoManyClients) }

func testEchoManyClients(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	addr := serve(t, l, echo)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for j := range 200 {
				msg := fmt.Sprintf("client %d line %d\n", i, j)
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Error(err)
					return
				}
				got, err := r.ReadString('\n')
				if err != nil || got != strings.ToUpper(msg) {
					t.Errorf("got %q, %v; want %q", got, err, strings.ToUpper(msg))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A reply far larger than the socket buffers makes the writer wait for
// room while the client is slow to read.
func TestLargeWriteWaitsForRoom(t *testing.T) { forModes(t, testLargeWriteWaitsForRoom) }

func testLargeWriteWaitsForRoom(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	const size = 16 << 20
	addr := serve(t, l, func(_ *Task, c *Conn) {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		_, _ = c.Write(make([]byte, size))
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{1})
	n, err := io.Copy(io.Discard, io.LimitReader(c, size))
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v; want %d", n, err, size)
	}
}

// Block lets other tasks run while one waits on something else.
func TestBlockServesOthers(t *testing.T) { forModes(t, testBlockServesOthers) }

func testBlockServesOthers(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	release := make(chan struct{})
	blocked := make(chan struct{})
	addr := serve(t, l, func(task *Task, c *Conn) {
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line == "block\n" {
			task.Block(func() {
				close(blocked)
				<-release
			})
		}
		c.Write([]byte("done\n"))
	})
	a, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write([]byte("block\n"))
	<-blocked
	b, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Write([]byte("hello\n"))
	if got, err := bufio.NewReader(b).ReadString('\n'); err != nil || got != "done\n" {
		t.Fatalf("second client got %q, %v while the first blocks", got, err)
	}
	close(release)
	if got, err := bufio.NewReader(a).ReadString('\n'); err != nil || got != "done\n" {
		t.Fatalf("blocked client got %q, %v", got, err)
	}
}

// sidePair is a loopback TCP connection outside serve: the test's end, and
// the other end wrapped for a task to attach; both close at the test's end.
func sidePair(t *testing.T) (net.Conn, *Conn) {
	t.Helper()
	side, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	sc, err := net.Dial("tcp", side.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	nc, err := side.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Wrap(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sc, c
}

// WaitReadable returns when either connection has data.
func TestWaitReadableEither(t *testing.T) { forModes(t, testWaitReadableEither) }

func testWaitReadableEither(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	sc, second := sidePair(t)

	woke := make(chan string, 1)
	addr := serve(t, l, func(task *Task, c *Conn) {
		// Detach before the test goroutine, woken, closes second.
		second.Attach(task)
		msg := ""
		if err := task.WaitReadable(c, second); err != nil {
			msg = err.Error()
		} else {
			var b [16]byte
			n, _ := second.Read(b[:])
			msg = string(b[:n])
		}
		second.Detach()
		woke <- msg
	})
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc.Write([]byte("ping"))
	if got := <-woke; got != "ping" {
		t.Fatalf("woke with %q, want ping", got)
	}
}

// Close fails the waits of tasks that wait on a connection, and Run
// returns when they have returned.
func TestCloseEndsWaitingTasks(t *testing.T) { forModes(t, testCloseEndsWaitingTasks) }

func testCloseEndsWaitingTasks(t *testing.T, cfg Config) {
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := run(l)
	errs := make(chan error, 1)
	waiting := make(chan struct{})
	addr := serve(t, l, func(task *Task, c *Conn) {
		task.Block(func() { close(waiting) })
		var b [1]byte
		_, err := c.Read(b[:])
		errs <- err
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-waiting
	l.Close()
	<-done
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read during close: %v, want net.ErrClosed", err)
	}
}

// A peer that sends its last data and closes before the task reads: the
// first read returns the data (less than asked), the next must report the
// end of stream although no readiness edge follows the first read.
func TestLastDataThenEndOfStream(t *testing.T) { forModes(t, testLastDataThenEndOfStream) }

func testLastDataThenEndOfStream(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	sent := make(chan struct{})
	got := make(chan string, 1)
	addr := serve(t, l, func(task *Task, c *Conn) {
		var b [64]byte
		if err := task.WaitReadable(c); err != nil { // registers c with the loop
			got <- err.Error()
			return
		}
		if _, err := io.ReadFull(c, b[:1]); err != nil {
			got <- err.Error()
			return
		}
		task.Block(func() { <-sent })
		n, err := c.Read(b[:])
		if err != nil {
			got <- err.Error()
			return
		}
		_, err = c.Read(b[n:])
		got <- fmt.Sprintf("%s then %v", b[:n], err)
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	c.Write([]byte("last"))
	c.Close()
	close(sent)
	select {
	case s := <-got:
		if s != "last then EOF" {
			t.Fatalf("got %q, want %q", s, "last then EOF")
		}
	case <-time.After(10 * time.Second): // a hang, not a speed check
		t.Fatal("the read after the last data never returned")
	}
}

// Listen accepts on the loop itself; connections that queued before the
// loop registered the socket are accepted too. It takes the socket from
// Go's poller: ln is closed (its socket is not, the loop accepts on it).
func TestListenAcceptsOnTheLoop(t *testing.T) { forModes(t, testListenAcceptsOnTheLoop) }

func testListenAcceptsOnTheLoop(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	early, err := net.Dial("tcp", ln.Addr().String()) // queued before Listen
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	noDelay := make(chan int, 2) // each accepted socket's TCP_NODELAY
	if err := l.Listen(ln, func(c *Conn) {
		v, err := unix.GetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil {
			v = -1
		}
		noDelay <- v
		l.Go(func(task *Task) {
			defer c.Close()
			c.Attach(task)
			echo(task, c)
		})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on ln after Listen: %v, want net.ErrClosed (Go's poller still holds the socket)", err)
	}
	late, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	for _, c := range []net.Conn{early, late} {
		c.Write([]byte("ping\n"))
		if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "PING\n" {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	for range 2 {
		if v := <-noDelay; v != 1 {
			t.Fatalf("accepted socket's TCP_NODELAY = %d, want 1", v)
		}
	}
}

// An accepted socket gets TCP_NODELAY whether or not it inherits it from
// the listener, and a listener whose sockets inherit it sets it no more.
func TestSetNoDelay(t *testing.T) {
	for _, onListener := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		fd, err := dupSocket(ln)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if onListener {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
				t.Fatal(err)
			}
		}
		lis := &listener{fd: fd}
		want := noDelayPerSocket
		if onListener {
			want = noDelayInherited
		}
		for i := range 2 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 5000); err != nil {
				t.Fatal(err)
			}
			afd, _, err := syscall.Accept4(fd, unix.SOCK_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(afd)
			lis.setNoDelay(afd)
			if v, err := unix.GetsockoptInt(afd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v != 1 {
				t.Fatalf("listener option %v, socket %d: TCP_NODELAY = %d, %v; want 1", onListener, i, v, err)
			}
			if lis.noDelay != want {
				t.Fatalf("listener option %v, socket %d: mode %d, want %d", onListener, i, lis.noDelay, want)
			}
		}
	}
}

// Many small writes to a client that reads slowly all arrive, in order,
// and the connection's Close waits for them: in io_uring mode they queue
// behind the send in flight and behind a full socket.
func TestManyWritesThenClose(t *testing.T) { forModes(t, testManyWritesThenClose) }

func testManyWritesThenClose(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	const n = 200000
	addr := serve(t, l, func(_ *Task, c *Conn) {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		w := bufio.NewWriterSize(c, 512)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "%d\n", i)
		}
		_ = w.Flush()
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(c, 64)
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if want := fmt.Sprintf("%d\n", i); line != want {
			t.Fatalf("line %d is %q", i, line)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the last line: %v, want end of stream", err)
	}
}

// Stats counts the waits in which the loop could sleep: after it answers a
// request it has nothing to do, so it waits once more.
func TestStatsCountSleeps(t *testing.T) { forModes(t, testStatsCountSleeps) }

func testStatsCountSleeps(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	c, err := net.Dial("tcp", serve(t, l, echo))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for round := range 5 {
		before := l.Stats().Sleeps
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "PING\n" {
			t.Fatalf("got %q, %v", line, err)
		}
		deadline := time.Now().Add(10 * time.Second) // a hang, not a speed check
		for l.Stats().Sleeps == before {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: Sleeps stayed at %d after the loop answered and ran out of work", round, before)
			}
			runtime.Gosched()
		}
	}
}

// A write the socket takes only part of, followed by a read whose answer
// needs the rest: the loop must send the rest rather than wait for the
// answer (it did wait in io_uring mode, counting the send's completion as
// done: pgbench -i through the router hung at its last COPY).
func TestPartialSendThenRead(t *testing.T) { forModes(t, testPartialSendThenRead) }

func testPartialSendThenRead(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	const size = 200 << 10 // under maxQueued: no wait for room
	result := make(chan error, 1)
	addr := serve(t, l, func(_ *Task, c *Conn) {
		// A small send buffer, so that the kernel takes only part of
		// the write at once.
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<10); err != nil {
			result <- err
			return
		}
		if _, err := c.Write(make([]byte, size)); err != nil {
			result <- err
			return
		}
		var b [1]byte
		_, err := c.Read(b[:])
		result <- err
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := io.Copy(io.Discard, io.LimitReader(c, size)); err != nil || n != size {
		t.Fatalf("read %d bytes, %v; want %d", n, err, size)
	}
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}

func TestAnswerThereBeforeRead(t *testing.T) { forModes(t, testAnswerThereBeforeRead) }

// testAnswerThereBeforeRead reads an answer that arrived before the read
// was issued. In io_uring mode a receive on a connection that was sent
// something it has not answered goes to the kernel's poll first; data
// already there must complete that poll.
func testAnswerThereBeforeRead(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	sc, second := sidePair(t)

	got := make(chan string, 1)
	addr := serve(t, l, func(task *Task, c *Conn) {
		second.Attach(task)
		defer second.Detach()
		var b [16]byte
		if _, err := c.Write([]byte("ping")); err != nil {
			got <- err.Error()
			return
		}
		// The answer to ping comes on c before anything comes on second.
		if _, err := io.ReadFull(second, b[:2]); err != nil {
			got <- err.Error()
			return
		}
		n, err := c.Read(b[:])
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	})
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var b [4]byte
	if _, err := io.ReadFull(cc, b[:]); err != nil || string(b[:]) != "ping" {
		t.Fatalf("read %q, %v; want ping", b[:], err)
	}
	// Loopback TCP has the bytes in the peer's receive queue when Write
	// returns, so the answer is there before the task reads c.
	if _, err := cc.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Write([]byte("go")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "pong" {
		t.Fatalf("read %q, want pong", s)
	}
}

func TestPipeliningPeer(t *testing.T) { forModes(t, testPipeliningPeer) }

// testPipeliningPeer serves a client that sends every request before it
// reads any answer, as a pipelining driver does (a pgx batch), with the
// answers larger than the sockets hold. The client's requests keep coming
// while the answers back up, so data from it does not mean it read what
// it was sent: every answer must still get out once it reads.
func testPipeliningPeer(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	const (
		requests = 400
		reqSize  = 16
		ansSize  = 3000
	)
	served := make(chan error, 1)
	addr := serve(t, l, func(_ *Task, c *Conn) {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<10); err != nil {
			served <- err
			return
		}
		req := make([]byte, reqSize)
		ans := make([]byte, ansSize)
		for i := range requests {
			if _, err := io.ReadFull(c, req); err != nil {
				served <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			if _, err := c.Write(ans); err != nil {
				served <- fmt.Errorf("answer %d: %w", i, err)
				return
			}
		}
		served <- nil
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<10) }); cerr != nil {
			return cerr
		}
		return err
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The requests go out in pieces, and only then does the client read:
	// with its 4 KiB receive buffer the answers back up after the first
	// few.
	for i := range requests / 40 {
		if _, err := c.Write(make([]byte, 40*reqSize)); err != nil {
			t.Fatalf("requests %d: %v", i*40, err)
		}
	}
	// A hang is what this test is for; the deadline only turns one into a
	// failure instead of the test binary's timeout.
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, io.LimitReader(c, requests*ansSize)); err != nil || n != requests*ansSize {
		t.Fatalf("read %d bytes of the answers, %v; want %d", n, err, requests*ansSize)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// A peer that sends before it reads, more than the sockets hold, while
// the task sends it as much: with Write both would wait for room forever;
// WriteUntilReadable lets the task read in between.
func TestWriteUntilReadable(t *testing.T) { forModes(t, testWriteUntilReadable) }

func testWriteUntilReadable(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	const size = 8 << 20
	type result struct {
		wrote, read int
		stops       int
		err         error
	}
	done := make(chan result, 1)
	addr := serve(t, l, func(_ *Task, c *Conn) {
		var r result
		out, in := make([]byte, size), make([]byte, 64<<10)
		read := func() {
			n, err := c.Read(in)
			r.read += n
			if err != nil && r.err == nil {
				r.err = err
			}
		}
		for r.wrote < size && r.err == nil {
			n, readable, err := c.WriteUntilReadable(out[r.wrote:])
			r.wrote += n
			r.err = err
			if readable {
				r.stops++
				read()
			}
		}
		for r.read < size && r.err == nil {
			read()
		}
		done <- r
	})
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_ = cc.SetDeadline(time.Now().Add(60 * time.Second)) // a stall fails, it does not hang
	if _, err := cc.Write(make([]byte, size)); err != nil {
		t.Fatalf("peer's write: %v (the task never read while it wrote)", err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(cc, size))
	if err != nil || n != size {
		t.Fatalf("peer read %d bytes, %v; want %d", n, err, size)
	}
	r := <-done
	if r.err != nil || r.wrote != size || r.read != size {
		t.Fatalf("task wrote %d and read %d bytes, %v; want %d each", r.wrote, r.read, r.err, size)
	}
	if r.stops == 0 {
		t.Fatal("the write never stopped to read: the test did not fill the sockets")
	}
}
