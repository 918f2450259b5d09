// Package netloop runs many connections' blocking-style code on one
// event-loop goroutine.
//
// Each task (a client session) is a coroutine (iter.Pull). When it reads a
// socket that has no data, or writes one that is full, it switches back to
// the loop, which waits for readiness with epoll and switches to whichever
// task can go on. A switch is a direct coroutine hand-off on the same
// thread: no run queue, no netpoller, no futex wake-up of another thread,
// which is what Go's per-connection goroutines pay twice per
// request-response round trip.
//
// Tasks must not block the loop. A task waits for something other than its
// sockets either by parking (Task.Park) until another task or goroutine
// wakes it (Task.Wake: a pool hands over a connection), or, for a call that
// blocks (dialing, a timed wait), through Task.Block, which runs the call on
// a goroutine of its own and resumes the task when it returns.
package netloop

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Loop is one event loop. Run it on a goroutine of its own; Go and Close
// may be called from any goroutine.
type Loop struct {
	epfd   int
	wakefd int // eventfd: posts from other goroutines

	conns     []*Conn        // by fd; loop goroutine only
	listeners []*listener    // by fd; loop goroutine only
	tasks     map[*Task]bool // live tasks; loop goroutine only
	idleCoros []*coro        // coroutines for the next tasks (coro.go); loop goroutine only
	evs       []unix.EpollEvent

	mu           sync.Mutex
	posted       []post // new tasks, woken tasks and tasks whose Block returned
	newListeners []*listener
	sleeping     bool // the loop is (about to be) in epoll_wait
	closing      bool

	blocks sync.WaitGroup // Block goroutines

	// io_uring mode (see uring.go and ringio.go); ring is nil in epoll
	// mode. Loop goroutine only, except usesRing.
	ring       *ring
	usesRing   atomic.Bool
	epollArmed bool        // an IORING_OP_EPOLL_WAIT is in flight
	tasksByID  slots[Task] // live tasks: the user data of their receives
	ready      []*Task     // tasks whose I/O ended without the kernel
	cqes       []cqe
	sending    slots[Conn] // connections with a send in flight (sendq.go)
	bufs       [][]byte    // free send buffers
	// sendsUnreaped counts sends submitted since the last reap: they
	// complete during submission, so a wait for news waits for one more.
	sendsUnreaped int
	riskySends    int           // of those, sends that may come back short (sendq.go)
	draining      int           // tasks waiting for a connection's output to drain
	backlogged    int           // connections with output queued behind a send in flight
	sleeps        atomic.Uint64 // waits that could sleep (Stats)

	noSchedBatch bool
	schedBatch   atomic.Bool   // the loop's thread runs in SCHED_BATCH (sched.go)
	started      chan struct{} // closed once Run has set up its thread
}

// Config configures a loop.
type Config struct {
	// NoIOUring makes the loop issue one system call per read and write
	// even where the kernel offers io_uring (for comparison, and for
	// kernels or sandboxes that misbehave with it).
	NoIOUring bool
	// NoSchedBatch keeps the loop's thread in the default scheduling
	// policy instead of SCHED_BATCH (sched.go says why batch; this is for
	// comparison).
	NoSchedBatch bool
}

// New makes a loop. It batches its tasks' socket system calls through
// io_uring when the kernel offers what that needs (Linux 6.15 or later,
// io_uring not disabled) and cfg allows it, and falls back to one system
// call per read and write otherwise; IOUring reports which.
func New(cfg Config) (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, errors.Join(errors.New("netloop: epoll_create1"), err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, errors.Join(errors.New("netloop: eventfd"), err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, errors.Join(errors.New("netloop: epoll_ctl"), err)
	}
	l := &Loop{
		epfd:   epfd,
		wakefd: wakefd,
		tasks:  make(map[*Task]bool),
		evs:    make([]unix.EpollEvent, 256),

		noSchedBatch: cfg.NoSchedBatch,
		started:      make(chan struct{}),
	}
	if !cfg.NoIOUring {
		if r, err := newRing(ringEntries); err == nil {
			l.ring = r
			l.usesRing.Store(true)
		}
	}
	return l, nil
}

// schedInterval is how often the loop goes through the Go scheduler.
// Switching among its coroutines does not count as scheduling, so without
// this the runtime's sysmon sees one goroutine running for 10 ms, preempts
// it with a signal (or takes its P while it waits in the kernel) and then
// polls every 20 µs for a while: on a 2-core VM with one client through the
// router, 3,000 sysmon wake-ups a second, about 15% of the router's CPU. A
// Gosched on the loop's locked thread costs about 12 µs; every 8 ms keeps
// sysmon's 10 ms check from ever firing.
const schedInterval = 8 * time.Millisecond

// ringEntries is the submission ring's size: more SQEs in one iteration
// are submitted in several calls.
const ringEntries = 256

// IOUring reports whether the loop batches its system calls through
// io_uring. Until Started's channel is closed it reports what New set up: Run
// falls back to epoll if the ring cannot be enabled on its thread.
func (l *Loop) IOUring() bool { return l.usesRing.Load() }

// SchedBatch reports whether the loop's thread runs in the SCHED_BATCH
// scheduling policy (sched.go): false before Started's channel is closed,
// with Config.NoSchedBatch, when the thread was already in another policy
// than the default, or when the kernel refused.
func (l *Loop) SchedBatch() bool { return l.schedBatch.Load() }

// Started returns a channel closed once Run has set up its thread (the
// io_uring submitter and the scheduling policy): from then on IOUring and
// SchedBatch report what the loop runs with.
func (l *Loop) Started() <-chan struct{} { return l.started }

// post asks the loop to resume a task.
type post struct {
	t         *Task
	blockDone bool // its Block's function returned (else: a Wake)
}

// Go starts fn as a task on the loop.
func (l *Loop) Go(fn func(t *Task)) {
	l.post(post{t: &Task{l: l, start: fn}})
}

// Close asks the loop to stop accepting and to end its tasks: a task
// waiting on a connection or parked gets net.ErrClosed (and so does every
// later wait of any task), and Run returns once all tasks have returned.
func (l *Loop) Close() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.wake()
}

func (l *Loop) post(p post) {
	l.mu.Lock()
	l.posted = append(l.posted, p)
	wake := l.sleeping
	l.sleeping = false
	l.mu.Unlock()
	if wake {
		l.wake()
	}
}

func (l *Loop) wake() {
	one := [8]byte{1}
	for {
		_, err := unix.Write(l.wakefd, one[:])
		if err != unix.EINTR {
			return // EAGAIN: the counter is already set, the loop wakes anyway
		}
	}
}

// Run serves tasks until Close was called and every task has returned.
//
// It keeps its goroutine (and so the coroutines it switches to) on one
// thread. Measured with one pgbench client through the router: without
// that, the router's threads migrated between CPUs about 14,000 times a
// second (perf stat cpu-migrations; 54 with it) and the router used 41 µs
// of CPU per transaction instead of 26 to 28.
func (l *Loop) Run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if l.ring != nil {
		if err := l.ring.enable(); err != nil {
			l.ring.close()
			l.ring = nil
			l.usesRing.Store(false)
		}
	}
	if !l.noSchedBatch {
		// Deferred after UnlockOSThread, so it runs before: the thread
		// goes back to Go's pool in the policy it came with.
		restore, batched, _ := batchThread() // refused: the default policy, SchedBatch says so
		l.schedBatch.Store(batched)
		defer restore()
	}
	close(l.started)
	defer func() {
		l.stopCoros()
		l.blocks.Wait()
		if l.ring != nil {
			l.closeRing()
		}
		unix.Close(l.epfd)
		unix.Close(l.wakefd)
	}()
	var posted []post
	lastSched := time.Now()
	for {
		if now := time.Now(); now.Sub(lastSched) >= schedInterval {
			runtime.Gosched()
			lastSched = now
		}
		l.mu.Lock()
		posted, l.posted = l.posted, posted[:0]
		newListeners := l.newListeners
		l.newListeners = nil
		closing := l.closing
		timeout := 0
		if len(posted) == 0 {
			timeout = -1
			l.sleeping = true // a post from now on writes the eventfd
		}
		l.mu.Unlock()

		for _, lis := range newListeners {
			l.addListener(lis)
		}
		if closing {
			l.closeListeners()
		}
		for i, p := range posted {
			posted[i] = post{}
			t := p.t
			switch {
			case t.coro == nil:
				l.begin(t)
			case t.state == stateDone, t.state == stateBlocked && !p.blockDone:
				continue // a late Wake
			}
			l.resume(t)
		}
		if closing {
			inKernel := false
			for t := range l.tasks {
				t.dead = true // its waits fail from now on
				switch t.state {
				case stateIO:
					inKernel = true
				case stateWaiting, stateParked:
					l.resume(t)
				case stateBlocked:
					if c := t.handshaking; c != nil {
						c.Shutdown() // its handshake's poll(2) returns
					}
				}
			}
			if len(l.tasks) == 0 {
				return
			}
			if inKernel && l.ring != nil {
				l.cancelAll() // their completions resume them
			}
		}
		if l.ring != nil {
			l.ringPoll(timeout != 0)
		} else {
			l.poll(timeout)
		}
	}
}

// poll waits up to timeout milliseconds (-1: no limit) for readiness and
// resumes the tasks waiting for it.
func (l *Loop) poll(timeout int) {
	if timeout != 0 {
		l.sleeps.Add(1)
	}
	n, err := unix.EpollWait(l.epfd, l.evs, timeout)
	if timeout != 0 {
		l.mu.Lock()
		l.sleeping = false
		l.mu.Unlock()
	}
	if err != nil {
		if err == unix.EINTR {
			return
		}
		panic("netloop: epoll_wait: " + err.Error())
	}
	l.handleEvents(n)
}

// handleEvents handles the first n entries of l.evs: it records readiness
// on the connections and resumes the tasks waiting for it.
func (l *Loop) handleEvents(n int) {
	for i := 0; i < n; i++ {
		ev := &l.evs[i]
		fd := int(ev.Fd)
		if fd == l.wakefd {
			var buf [8]byte
			_, _ = unix.Read(l.wakefd, buf[:])
			continue
		}
		if fd < len(l.listeners) && l.listeners[fd] != nil {
			l.acceptAll(l.listeners[fd])
			continue
		}
		if fd >= len(l.conns) {
			continue
		}
		c := l.conns[fd]
		if c == nil {
			continue
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
			c.inEdge = true
		}
		if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
			c.hup = true
		}
		if c.waiter == nil || c.waiter.state != stateWaiting ||
			ev.Events&(c.waitEv|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) == 0 {
			continue // stale, or nobody waits for it: the next read or write finds out
		}
		l.resume(c.waiter)
	}
}

// begin makes t's coroutine.
func (l *Loop) begin(t *Task) {
	l.tasks[t] = true
	t.slot = l.tasksByID.add(t)
	t.coro = l.takeCoro(t)
}

// resume runs t until it waits, blocks or returns.
func (l *Loop) resume(t *Task) {
	l.unwait(t)
	t.state = stateRunning
	// The coroutine never ends while it runs a task (only stopCoros ends
	// an idle one), so a returned task is the state its coroutine set.
	block, _ := t.coro.next()
	if t.state == stateDone {
		delete(l.tasks, t)
		l.tasksByID.remove(t.slot)
		l.putCoro(t.coro)
		return
	}
	if t.state == stateIO {
		l.startIO(t)
		return
	}
	if block != nil {
		t.state = stateBlocked
		l.blocks.Add(1)
		go func() {
			defer l.blocks.Done()
			block()
			l.post(post{t: t, blockDone: true})
		}()
	}
}

// unwait forgets the connections t waits for.
func (l *Loop) unwait(t *Task) {
	for _, c := range t.waiting {
		c.waiter = nil
	}
	t.waiting = t.waiting[:0]
}

// register adds c to the loop's epoll set, edge-triggered for reads and
// writes, once for the connection's life.
func (l *Loop) register(c *Conn) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		return err
	}
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	c.l = l
	return nil
}
