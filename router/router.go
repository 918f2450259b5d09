// Package router is Shardline's PostgreSQL-protocol front end. Clients
// connect with any driver; each transaction goes to the shard that holds the
// session's tenant over pooled server connections, with the tenant bound on
// the server (current_setting('shardline.tenant')).
package router

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/internal/netloop"
)

// Router accepts client connections and routes their transactions. It is
// safe for concurrent use; Serve may be called once.
type Router struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	auth    *authenticator
	tables  *tableCheck
	stmts   *sharedStmts
	tls     *tlsServer // nil: no TLS

	pools  []atomic.Pointer[map[string]*pool] // by loop, then member name
	poolMu sync.Mutex                         // serializes pool map rebuilds
	mon    *monitor
	loops  *loops // run the sessions

	defaultTarget target
	defaultMaxLag lagBound

	serverParams atomic.Pointer[map[string]string]
	greeting     atomic.Pointer[greeting]

	writers sync.Pool // *bufio.Writer of clientWriteBuffer bytes, for sessions

	settingsMu sync.Mutex
	settingsOK map[string]struct{} // startup setting lists a server accepted

	nextPID  atomic.Uint32
	sessMu   sync.Mutex
	sessions map[uint32]*session

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Router. Call Serve to accept connections and Close to stop.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ls, err := newLoops(cfg.Loops, netloop.Config{NoIOUring: cfg.NoIOUring, NoSchedBatch: cfg.NoSchedBatch})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Router{
		loops:      ls,
		cfg:        cfg,
		log:        cfg.Logger,
		metrics:    newMetrics(cfg.Registerer, ls),
		auth:       newAuthenticator(&cfg, cfg.Registerer),
		tables:     newTableCheck(cfg.StatementCacheSize),
		stmts:      newSharedStmts(),
		tls:        newTLSServer(&cfg),
		sessions:   make(map[uint32]*session),
		settingsOK: make(map[string]struct{}),
		ctx:        ctx,
		cancel:     cancel,
	}
	r.pools = make([]atomic.Pointer[map[string]*pool], ls.Count())
	for i := range r.pools {
		r.pools[i].Store(&map[string]*pool{})
	}
	r.defaultTarget, _ = parseTarget(cfg.DefaultTarget) // checked by Validate
	r.defaultMaxLag, _ = parseLagBound(cfg.DefaultMaxLag)
	r.mon = newMonitor(cfg.Placement, cfg.ReplicaPollInterval, r.metrics)
	if cfg.BindingToken == "" {
		r.log.Warn("no binding token: tenants are bound with SET shardline.tenant, which only shards without the shardline_guard library take, and where any client can forge it (docs/isolation.md)")
	}
	for _, l := range ls.all {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			l.Run()
		}()
		<-l.Started() // IOUring and SchedBatch report what the loop runs with from here on
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.mon.run(ctx)
	}()
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	r.nextPID.Store(binary.BigEndian.Uint32(seed[:]) & 0x3fffffff)
	return r, nil
}

// IOUring reports whether the router's event loops batch their socket
// system calls through io_uring (else they make one per read and write).
func (r *Router) IOUring() bool { return r.loops.IOUring() }

// MapRevision returns the etcd revision of the placement map the router
// routes by (every transaction reads the current map).
func (r *Router) MapRevision() int64 {
	if p := r.cfg.Placement.Current(); p != nil {
		return p.Revision
	}
	return 0
}

// Serve accepts connections on ln until Close is called. The router's event
// loop takes over ln's socket (ln is closed at once; see netloop's Listen)
// and closes it on Close. It returns nil after Close.
func (r *Router) Serve(ln net.Listener) error {
	if err := r.auth.checkListener(ln.Addr()); err != nil {
		ln.Close()
		return err
	}
	if r.auth.method == AuthTrust {
		r.log.Warn("client authentication is off (trust): any local client may connect as any user, without a password", "addr", ln.Addr().String())
	}
	r.log.Info("router serving", "addr", ln.Addr().String(), "loops", r.loops.Count(), "io_uring", r.loops.IOUring(), "sched_batch", r.loops.SchedBatch())
	if err := r.loops.all[0].Listen(ln, r.accept); err != nil {
		if r.ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("router: serve %s: %w", ln.Addr(), err)
	}
	<-r.ctx.Done()
	return nil
}

// Close stops accepting, closes every client connection (a session's open
// transaction is rolled back by its server when the server connection
// closes) and closes the pools.
func (r *Router) Close() error {
	r.cancel()
	r.sessMu.Lock()
	for _, s := range r.sessions {
		s.conn.Shutdown()
	}
	r.sessMu.Unlock()
	r.loops.close() // fails the waits of sessions still running
	r.wg.Wait()
	for i := range r.pools {
		for _, p := range *r.pools[i].Load() {
			p.close()
		}
	}
	return nil
}

// poolFor returns loop's pool of shard's primary in p.
func (r *Router) poolFor(p *shardline.Placement, shard shardline.ShardID, loop int) (*pool, error) {
	sh, ok := p.Shards[shard]
	if !ok {
		return nil, &Error{Code: codeCannotConnectNow, Message: "shard " + string(shard) + " is not in the placement map",
			Hint: "Check the cluster with 'shardline status'."}
	}
	return r.memberPool(shard, sh.Primary, sh.ServerUser, false, loop)
}

// memberPool returns loop's pool of one member, whose connections log in
// as user ("" for the DSN's user), creating it (or replacing it when the
// member's DSN or the user changed) on first use.
func (r *Router) memberPool(shard shardline.ShardID, m shardline.Member, user string, replica bool, loop int) (*pool, error) {
	pools := &r.pools[loop]
	if pl, ok := (*pools.Load())[m.Name]; ok && pl.dsn == m.DSN && pl.serverUser == user {
		return pl, nil
	}
	r.poolMu.Lock()
	defer r.poolMu.Unlock()
	cur := *pools.Load()
	if pl, ok := cur[m.Name]; ok && pl.dsn == m.DSN && pl.serverUser == user {
		return pl, nil
	}
	size := poolShare(r.cfg.PoolSize, len(r.loops.all), loop)
	pl, err := newPool(shard, m.DSN, user, size, r.cfg.WaitTimeout, r.cfg.IdleCheckAfter, r.metrics.forShard(string(shard)), r.learnServerParams)
	if err != nil {
		return nil, &Error{Code: codeCannotConnectNow, Message: err.Error(), Err: err}
	}
	pl.allowSuperuser = r.cfg.AllowSuperuser
	pl.member, pl.replica = m.Name, replica
	next := make(map[string]*pool, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	old := cur[m.Name]
	next[m.Name] = pl
	pools.Store(&next)
	if old != nil {
		old.close()
	}
	return pl, nil
}

// ReplicaHealth returns the router's last sample of every replica, by
// member name.
func (r *Router) ReplicaHealth() map[string]shardline.ReplicaHealth { return r.mon.health() }

// learnServerParams keeps the first server's ParameterStatus values to greet
// clients with (server_version and friends).
func (r *Router) learnServerParams(params map[string]string) {
	if r.serverParams.Load() != nil {
		return
	}
	cp := make(map[string]string, len(params))
	for k, v := range params {
		cp[k] = v
	}
	r.serverParams.CompareAndSwap(nil, &cp)
}

// placement returns the current map or an error saying there is none yet.
func (r *Router) placement() (*shardline.Placement, error) {
	p := r.cfg.Placement.Current()
	if p == nil {
		return nil, &Error{Code: codeCannotConnectNow, Message: "the router has no placement map yet",
			Hint: "Wait for the cluster to finish starting ('shardline status')."}
	}
	return p, nil
}

// register gives s a process ID for cancel requests; it fails once Close
// has begun.
func (r *Router) register(s *session) bool {
	r.sessMu.Lock()
	defer r.sessMu.Unlock()
	if r.ctx.Err() != nil {
		return false
	}
	for {
		pid := r.nextPID.Add(1) & 0x3fffffff
		if _, taken := r.sessions[pid]; !taken && pid != 0 {
			s.pid = pid
			break
		}
	}
	r.sessions[s.pid] = s
	return true
}

func (r *Router) unregister(s *session) {
	r.sessMu.Lock()
	delete(r.sessions, s.pid)
	r.sessMu.Unlock()
}

// cancelRequest forwards a client's CancelRequest to the server connection
// the session uses now, if the key matches.
func (r *Router) cancelRequest(pid, secret uint32) {
	r.sessMu.Lock()
	s := r.sessions[pid]
	r.sessMu.Unlock()
	if s == nil || s.secret != secret {
		return
	}
	b := s.current.Load()
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.WaitTimeout)
	defer cancel()
	if err := b.cancel(ctx); err != nil {
		r.log.Warn("forward cancel request", "shard", b.pool.shard, "err", err)
	}
}

const maxKnownSettings = 1024

func (r *Router) knownSettings(sql string) bool {
	r.settingsMu.Lock()
	defer r.settingsMu.Unlock()
	_, ok := r.settingsOK[sql]
	return ok
}

func (r *Router) rememberSettings(sql string) {
	r.settingsMu.Lock()
	defer r.settingsMu.Unlock()
	if len(r.settingsOK) >= maxKnownSettings {
		clear(r.settingsOK)
	}
	r.settingsOK[sql] = struct{}{}
}

// getWriter returns a pooled client write buffer writing to c.
func (r *Router) getWriter(c io.Writer) *bufio.Writer {
	w, _ := r.writers.Get().(*bufio.Writer)
	if w == nil {
		return bufio.NewWriterSize(c, clientWriteBuffer)
	}
	w.Reset(c)
	return w
}

// greeting is the ParameterStatus part of the greeting, encoded once.
type greeting struct {
	keys []string // sorted
	msgs [][]byte // ParameterStatus of keys[i]
}

// greetingFor returns the encoded greeting of the server parameters the
// router learned (built once; server is what serverParams returned).
func (r *Router) greetingFor(server map[string]string) *greeting {
	if g := r.greeting.Load(); g != nil {
		return g
	}
	g := &greeting{}
	for k := range server {
		g.keys = append(g.keys, k)
	}
	slices.Sort(g.keys)
	for _, k := range g.keys {
		g.msgs = append(g.msgs, parameterStatus(k, server[k]))
	}
	if r.serverParams.Load() != nil { // cache only the real server's set
		r.greeting.CompareAndSwap(nil, g)
	}
	return g
}
