package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
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
	cfg     *pgconn.Config
	max     int
	timeout time.Duration
	// idleCheck is how long a connection may sit idle before acquire checks
	// that the server has not closed it.
	idleCheck time.Duration
	metrics   *poolMetrics
	onDial    func(params map[string]string)

	mu      sync.Mutex
	idle    []*backend
	total   int // open plus dialing
	waiters []chan *backend
	closed  bool
}

func newPool(shard shardline.ShardID, dsn string, max int, timeout, idleCheck time.Duration, m *poolMetrics, onDial func(map[string]string)) (*pool, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("shard %s: parse DSN: %w", shard, err)
	}
	return &pool{shard: shard, dsn: dsn, cfg: cfg, max: max, timeout: timeout, idleCheck: idleCheck, metrics: m, onDial: onDial}, nil
}

// acquire returns an idle connection (prefer, when it is idle), a new one, or
// waits up to the pool timeout for one to be released.
func (p *pool) acquire(ctx context.Context, prefer *backend) (*backend, error) {
	for {
		b, err := p.acquireOnce(ctx, prefer)
		if err != nil || b.lastUsed.IsZero() || time.Since(b.lastUsed) < p.idleCheck || b.alive() {
			return b, err
		}
		// The server closed it while it sat idle (a restart, an
		// administrator's pg_terminate_backend): drop it and take another.
		p.discard(b)
		prefer = nil
	}
}

func (p *pool) acquireOnce(ctx context.Context, prefer *backend) (*backend, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	if n := len(p.idle); n > 0 {
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
		p.mu.Unlock()
		return b, nil
	}
	if p.total < p.max {
		p.total++
		p.mu.Unlock()
		return p.dial(ctx)
	}
	ch := make(chan *backend, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	p.metrics.waits.Inc()

	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case b := <-ch:
		if b == nil { // a slot was freed: dial into it
			return p.dial(ctx)
		}
		return b, nil
	case <-ctx.Done():
		p.abandon(ch)
		return nil, ctx.Err()
	case <-t.C:
		p.abandon(ch)
		return nil, &Error{Code: codeTooManyConnections,
			Message: fmt.Sprintf("no server connection to shard %s became free within %s", p.shard, p.timeout),
			Hint:    "Raise the router's pool size or shorten transactions."}
	}
}

// abandon removes a waiter; if a connection was handed to it meanwhile, the
// connection goes back.
func (p *pool) abandon(ch chan *backend) {
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	// Already handed over: take what was sent and pass it on.
	if b := <-ch; b != nil {
		p.release(b)
	} else {
		p.freeSlot()
	}
}

func (p *pool) dial(ctx context.Context) (*backend, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	b, params, err := dialBackend(ctx, p)
	if err != nil {
		p.freeSlot()
		p.metrics.dialErrors.Inc()
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
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		ch <- b
		return
	}
	b.lastUsed = time.Now()
	p.idle = append(p.idle, b)
	p.mu.Unlock()
}

// discard closes a connection and frees its slot.
func (p *pool) discard(b *backend) {
	b.close()
	p.metrics.open.Dec()
	p.freeSlot()
}

func (p *pool) freeSlot() {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		ch <- nil // the waiter dials into the freed slot
		return
	}
	p.total--
	p.mu.Unlock()
}

// close closes the idle connections; busy ones are closed when released.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
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
