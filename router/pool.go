package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/internal/netloop"
)

// pool holds the server connections of one shard member. Idle connections
// are reused last-in first-out, except that a session gets back the
// connection it used last when that one is idle (it then carries the
// session's tenant binding and settings already).
type pool struct {
	shard   shardline.ShardID
	member  string
	replica bool
	dsn     string
	// serverUser is the user that replaced the DSN's, or "".
	serverUser string
	// allowSuperuser lets connections log in as a superuser or BYPASSRLS
	// role (Config.AllowSuperuser).
	allowSuperuser bool
	cfg            *pgconn.Config
	max            int
	timeout        time.Duration
	// idleCheck is how long a connection may sit idle before acquire checks
	// that the server has not closed it.
	idleCheck time.Duration
	metrics   *poolMetrics
	onDial    func(params map[string]string)

	mu         sync.Mutex
	idle       []*backend
	total      int       // open plus dialing
	waiters    []*waiter // FIFO, so in deadline order
	timer      *time.Timer
	timerArmed bool
	closed     bool
}

// newPool makes the pool of the member at dsn, whose connections log in as
// user, or as the DSN's user when user is "".
func newPool(shard shardline.ShardID, dsn, user string, max int, timeout, idleCheck time.Duration, m *poolMetrics, onDial func(map[string]string)) (*pool, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("shard %s: parse DSN: %w", shard, err)
	}
	if user != "" && user != cfg.User {
		cfg.User = user
		// The DSN's password, or the one its passfile gave, is its user's.
		cfg.Password = passfilePassword(cfg)
	}
	return &pool{shard: shard, dsn: dsn, serverUser: user, cfg: cfg, max: max, timeout: timeout, idleCheck: idleCheck, metrics: m, onDial: onDial}, nil
}

// take returns an idle connection (prefer, when it is idle) without waiting
// or dialing; ok is false when none is idle.
func (p *pool) take(prefer *backend) (b *backend, ok bool, err error) {
	for {
		b, err := p.popIdle(prefer)
		if err != nil || b == nil {
			return nil, false, err
		}
		if b.lastUsed.IsZero() || time.Since(b.lastUsed) < p.idleCheck || b.alive() {
			return b, true, nil
		}
		// The server closed it while it sat idle (a restart, an
		// administrator's pg_terminate_backend): drop it and take another.
		p.discard(b)
		prefer = nil
	}
}

// acquire returns an idle connection (prefer, when it is idle), a new one, or
// waits up to the pool timeout for one to be released. w's task waits on
// its event loop: parked until a release hands it a connection, dialing off
// the loop (Block). w is the session's own, reused for every wait.
func (p *pool) acquire(ctx context.Context, w *waiter, prefer *backend) (*backend, error) {
	for {
		if b, ok, err := p.take(prefer); ok || err != nil {
			return b, err
		}
		prefer = nil
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			return nil, errPoolClosed
		case len(p.idle) > 0: // released meanwhile
			p.mu.Unlock()
			continue
		case p.total < p.max:
			p.total++
			p.mu.Unlock()
			return p.dialFor(ctx, w.task)
		}
		w.state, w.b, w.deadline = waitWaiting, nil, time.Now().Add(p.timeout)
		p.waiters = append(p.waiters, w)
		if !p.timerArmed {
			p.armTimer(p.timeout)
		}
		p.mu.Unlock()
		p.metrics.waits.Inc()

		// A connection handed over was just in use: no idle check.
		b, err := p.await(w)
		if err == nil && b == nil { // a slot was freed: dial into it
			return p.dialFor(ctx, w.task)
		}
		return b, err
	}
}

// waiter is a session waiting for a connection. Its fields change under
// the pool's lock while it is queued.
type waiter struct {
	task     *netloop.Task
	state    waitState
	b        *backend // handed over (waitHanded)
	deadline time.Time
}

type waitState uint8

const (
	waitWaiting   waitState = iota
	waitHanded              // b is the session's
	waitSlot                // a connection was discarded: dial in its place
	waitExpired             // the pool timeout passed
	waitAbandoned           // the session gave up (router closing)
)

// await parks w's task until a release, a freed slot or the timeout
// settles it.
func (p *pool) await(w *waiter) (*backend, error) {
	for {
		parkErr := w.task.Park()
		p.mu.Lock()
		if w.state == waitWaiting && parkErr != nil {
			p.removeWaiter(w)
			w.state = waitAbandoned
		}
		st, b := w.state, w.b
		w.b = nil
		p.mu.Unlock()
		switch st {
		case waitWaiting:
			continue // woken early (a late Wake)
		case waitHanded:
			return b, nil
		case waitSlot:
			return nil, nil
		case waitExpired:
			return nil, &Error{Code: codeTooManyConnections,
				Message: fmt.Sprintf("no server connection to shard %s became free within %s", p.shard, p.timeout),
				Hint:    "Raise the router's pool size or shorten transactions."}
		default:
			return nil, parkErr
		}
	}
}

// armTimer makes the pool's one timer fire after d; p.mu is held. Waiters
// queue in deadline order (one timeout for all), so the timer only ever
// needs the first one's deadline: no timer per wait.
func (p *pool) armTimer(d time.Duration) {
	p.timerArmed = true
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.expireWaiters)
		return
	}
	p.timer.Reset(d)
}

// expireWaiters settles the waiters whose time is up and re-arms the timer
// for the next one.
func (p *pool) expireWaiters() {
	var expired []*waiter
	p.mu.Lock()
	now := time.Now()
	for len(p.waiters) > 0 && !p.waiters[0].deadline.After(now) {
		w := p.nextWaiter()
		w.state = waitExpired
		expired = append(expired, w)
	}
	p.timerArmed = false
	if len(p.waiters) > 0 {
		p.armTimer(p.waiters[0].deadline.Sub(now))
	}
	p.mu.Unlock()
	for _, w := range expired {
		w.task.Wake()
	}
}

func (p *pool) removeWaiter(w *waiter) {
	for i, x := range p.waiters {
		if x == w {
			copy(p.waiters[i:], p.waiters[i+1:])
			p.waiters[len(p.waiters)-1] = nil
			p.waiters = p.waiters[:len(p.waiters)-1]
			return
		}
	}
}

// nextWaiter pops the longest-waiting session, or nil; p.mu is held.
func (p *pool) nextWaiter() *waiter {
	if len(p.waiters) == 0 {
		return nil
	}
	w := p.waiters[0]
	copy(p.waiters, p.waiters[1:])
	p.waiters[len(p.waiters)-1] = nil
	p.waiters = p.waiters[:len(p.waiters)-1]
	return w
}

// dialFor dials into a reserved slot off t's event loop.
func (p *pool) dialFor(ctx context.Context, t *netloop.Task) (b *backend, err error) {
	t.Block(func() { b, err = p.dial(ctx) })
	return b, err
}

// popIdle removes and returns an idle connection, or nil.
func (p *pool) popIdle(prefer *backend) (*backend, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	n := len(p.idle)
	if n == 0 {
		return nil, nil
	}
	i := n - 1
	if prefer != nil && prefer.pool == p {
		for j := n - 1; j >= 0; j-- {
			if p.idle[j] == prefer {
				i = j
				break
			}
		}
	}
	b := p.idle[i]
	p.idle[i] = p.idle[n-1]
	p.idle = p.idle[:n-1]
	return b, nil
}

func (p *pool) dial(ctx context.Context) (*backend, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	b, params, err := dialBackend(ctx, p)
	if err != nil {
		p.freeSlot()
		p.metrics.dialErrors.Inc()
		var re *Error
		if errors.As(err, &re) {
			return nil, re
		}
		return nil, &Error{Code: codeCannotConnectNow,
			Message: fmt.Sprintf("cannot connect to shard %s", p.shard),
			Hint:    "Check that the shard's primary is running ('shardline status').", Err: err}
	}
	p.metrics.open.Inc()
	if p.onDial != nil {
		p.onDial(params)
	}
	return b, nil
}

// release returns a healthy connection to the pool.
func (p *pool) release(b *backend) {
	b.conn.Detach()
	if b.broken {
		p.discard(b)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.discard(b)
		return
	}
	if w := p.nextWaiter(); w != nil {
		w.state, w.b = waitHanded, b
		p.mu.Unlock()
		w.task.Wake()
		return
	}
	b.lastUsed = time.Now()
	p.idle = append(p.idle, b)
	p.mu.Unlock()
}

// discard closes a connection and frees its slot.
func (p *pool) discard(b *backend) {
	b.conn.Detach()
	b.close()
	p.metrics.open.Dec()
	p.freeSlot()
}

func (p *pool) freeSlot() {
	p.mu.Lock()
	if w := p.nextWaiter(); w != nil {
		w.state = waitSlot // the waiter dials into the freed slot
		p.mu.Unlock()
		w.task.Wake()
		return
	}
	p.total--
	p.mu.Unlock()
}

// close closes the idle connections; busy ones are closed when released.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
	idle := p.idle
	p.idle = nil
	p.total -= len(idle)
	p.mu.Unlock()
	for _, b := range idle {
		b.close()
		p.metrics.open.Dec()
	}
}

// inUse is how many connections sessions hold now (load, for choosing
// among replicas).
func (p *pool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total - len(p.idle)
}
