package router

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardline/shardline"
)

// monitor samples every shard's primary WAL position and every replica's
// replay position each interval. From the primary's recent positions it
// knows, for each replica, the latest moment at which the replica had
// replayed everything the primary had written: a read served by the
// replica at time now is at most now minus that moment stale. That bound
// holds between samples too, so a staleness bound is never exceeded, only
// measured conservatively.
type monitor struct {
	src      PlacementSource
	interval time.Duration
	timeout  time.Duration
	metrics  *metrics

	state   atomic.Pointer[healthState]
	changed atomic.Pointer[chan struct{}] // closed and replaced on every publish

	conns map[string]*pgconn.PgConn // by DSN; owned by the run goroutine
	hist  map[shardline.ShardID]*lsnHistory
}

// healthState is one published, immutable set of samples.
type healthState struct {
	replicas map[string]*replicaState // by member name
}

type replicaState struct {
	shard     shardline.ShardID
	member    string
	healthy   bool
	replay    shardline.LSN // as the replica reports it
	reached   shardline.LSN // replay in the primary's insert form (walLayout.insertForm): what samples and tokens are compared with
	lagBytes  int64
	caughtUp  time.Time // the replica had replayed all WAL written before this
	sampledAt time.Time
}

// replayed says whether the replica had replayed the WAL before insert
// position lsn (a sample, a read-your-writes token) at its last sample.
func (r *replicaState) replayed(lsn shardline.LSN) bool { return lsn <= r.reached }

// staleness is how stale a read served now may be.
func (r *replicaState) staleness(now time.Time) time.Duration {
	if r.caughtUp.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(r.caughtUp)
}

// lsnHistory keeps the primary's recent (time, WAL position) samples.
type lsnHistory struct {
	samples []lsnSample // oldest first, bounded
}

type lsnSample struct {
	at  time.Time
	lsn shardline.LSN
}

const historyLen = 512

func (h *lsnHistory) add(at time.Time, lsn shardline.LSN) {
	if len(h.samples) == historyLen {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:historyLen-1]
	}
	h.samples = append(h.samples, lsnSample{at, lsn})
}

// caughtUp returns the time of the newest sample whose position a replica
// has reached (its replay position in insert form, replicaState.reached),
// or the zero time when it is behind every sample kept.
func (h *lsnHistory) caughtUp(reached shardline.LSN) time.Time {
	for i := len(h.samples) - 1; i >= 0; i-- {
		if h.samples[i].lsn <= reached {
			return h.samples[i].at
		}
	}
	return time.Time{}
}

func newMonitor(src PlacementSource, interval time.Duration, m *metrics) *monitor {
	mon := &monitor{src: src, interval: interval, timeout: max(interval, 200*time.Millisecond), metrics: m,
		conns: map[string]*pgconn.PgConn{}, hist: map[shardline.ShardID]*lsnHistory{}}
	mon.state.Store(&healthState{replicas: map[string]*replicaState{}})
	ch := make(chan struct{})
	mon.changed.Store(&ch)
	return mon
}

// run samples until ctx ends.
func (m *monitor) run(ctx context.Context) {
	defer func() {
		for _, c := range m.conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample polls every shard once, shards in parallel, and publishes.
func (m *monitor) sample(ctx context.Context) {
	p := m.src.Current()
	if p == nil {
		return
	}
	prev := m.state.Load()
	next := &healthState{replicas: make(map[string]*replicaState)}
	var probes []*shardProbe
	for id, sh := range p.Shards {
		if len(sh.Replicas) == 0 {
			continue
		}
		h := m.hist[id]
		if h == nil {
			h = &lsnHistory{}
			m.hist[id] = h
		}
		pr := &shardProbe{shard: sh, members: append([]shardline.Member{sh.Primary}, sh.Replicas...), hist: h}
		for _, mem := range pr.members {
			pr.conns = append(pr.conns, m.conns[mem.DSN])
		}
		probes = append(probes, pr)
	}
	var wg sync.WaitGroup
	for _, pr := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr.states = m.sampleShard(ctx, pr, prev)
		}()
	}
	wg.Wait()
	for _, pr := range probes {
		for i, mem := range pr.members {
			m.conns[mem.DSN] = pr.conns[i]
		}
		for _, st := range pr.states {
			next.replicas[st.member] = st
		}
	}
	m.publish(next)
}

// shardProbe is one shard's sampling work; its goroutine owns it until
// sample's Wait returns.
type shardProbe struct {
	shard   shardline.Shard
	members []shardline.Member // primary first
	conns   []*pgconn.PgConn   // aligned with members; nil = dial
	hist    *lsnHistory
	states  []*replicaState
}

func (m *monitor) sampleShard(ctx context.Context, pr *shardProbe, prev *healthState) []*replicaState {
	at := time.Now()
	primaryLSN, err := m.primaryLSN(ctx, pr.members[0].DSN, &pr.conns[0])
	if err == nil {
		pr.hist.add(at, primaryLSN)
	}
	out := make([]*replicaState, 0, len(pr.members)-1)
	for i, mem := range pr.members[1:] {
		st := &replicaState{shard: pr.shard.ID, member: mem.Name, sampledAt: at}
		if old := prev.replicas[mem.Name]; old != nil {
			st.caughtUp, st.replay, st.reached = old.caughtUp, old.replay, old.reached // kept while the primary cannot be sampled
		}
		replay, reached, rerr := m.replayLSN(ctx, mem.DSN, &pr.conns[i+1])
		if rerr == nil {
			st.healthy = true
			st.replay, st.reached = replay, reached
			if err == nil {
				st.caughtUp = pr.hist.caughtUp(reached)
				st.lagBytes = max(int64(primaryLSN)-int64(reached), 0)
			}
		}
		out = append(out, st)
		if m.metrics != nil {
			m.metrics.observeReplica(st)
		}
	}
	return out
}

// primaryLSN samples a primary's WAL insert position, which is at or after
// every record visible to other sessions even before it is flushed (so a
// commit under synchronous_commit=off is covered).
func (m *monitor) primaryLSN(ctx context.Context, dsn string, slot **pgconn.PgConn) (shardline.LSN, error) {
	row, err := m.queryRow(ctx, dsn, slot, "SELECT pg_current_wal_insert_lsn()::text", 1)
	if err != nil {
		return 0, err
	}
	return shardline.ParseLSN(string(row[0]))
}

// replayLSN samples a replica's replay position, as it reports it and in
// the primary's insert form, by the replica's WAL layout (a replica's is
// its primary's: streaming replication needs the same).
func (m *monitor) replayLSN(ctx context.Context, dsn string, slot **pgconn.PgConn) (replay, reached shardline.LSN, err error) {
	row, err := m.queryRow(ctx, dsn, slot, "SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text, current_setting('wal_block_size'), "+
		"pg_size_bytes(current_setting('wal_segment_size'))::text", 3)
	if err != nil {
		return 0, 0, err
	}
	if replay, err = shardline.ParseLSN(string(row[0])); err != nil {
		return 0, 0, err
	}
	var w walLayout
	w.block, err = strconv.ParseUint(string(row[1]), 10, 64)
	if err == nil {
		w.segment, err = strconv.ParseUint(string(row[2]), 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: WAL layout %q, %q", errProtocol, row[1], row[2])
	}
	return replay, w.insertForm(replay), nil
}

// queryRow runs q (returning one row of cols columns) on the member,
// dialing into *slot when it is nil and clearing it when the connection
// fails.
func (m *monitor) queryRow(ctx context.Context, dsn string, slot **pgconn.PgConn, q string, cols int) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	c := *slot
	if c == nil {
		var err error
		c, err = pgconn.Connect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		*slot = c
	}
	res := c.Exec(ctx, q)
	rs, err := res.ReadAll()
	if err == nil && (len(rs) != 1 || len(rs[0].Rows) != 1 || len(rs[0].Rows[0]) != cols) {
		err = errProtocol
	}
	if err != nil {
		c.Close(context.Background())
		*slot = nil
		return nil, err
	}
	return rs[0].Rows[0], nil
}

func (m *monitor) publish(next *healthState) {
	m.state.Store(next)
	ch := make(chan struct{})
	old := m.changed.Swap(&ch)
	close(*old)
}

// markDown takes a replica out of the eligible set at once (a connection to
// it failed); the next sample decides again.
func (m *monitor) markDown(member string) {
	cur := m.state.Load()
	st, ok := cur.replicas[member]
	if !ok || !st.healthy {
		return
	}
	next := &healthState{replicas: make(map[string]*replicaState, len(cur.replicas))}
	for k, v := range cur.replicas {
		next.replicas[k] = v
	}
	down := *st
	down.healthy = false
	next.replicas[member] = &down
	m.publish(next)
}

// health returns the last sample of every replica.
func (m *monitor) health() map[string]shardline.ReplicaHealth {
	cur := m.state.Load()
	out := make(map[string]shardline.ReplicaHealth, len(cur.replicas))
	for name, st := range cur.replicas {
		lag := int64(0)
		if st.healthy && !st.caughtUp.IsZero() {
			lag = st.sampledAt.Sub(st.caughtUp).Milliseconds()
		} else if st.caughtUp.IsZero() {
			lag = -1
		}
		out[name] = shardline.ReplicaHealth{Member: name, Shard: st.shard, Healthy: st.healthy,
			LagBytes: st.lagBytes, LagMillis: lag, ReplayLSN: st.replay}
	}
	return out
}

func (m *metrics) observeReplica(st *replicaState) {
	l := prometheus.Labels{"shard": string(st.shard), "member": st.member}
	m.replicaLagBytes.With(l).Set(float64(st.lagBytes))
	if !st.caughtUp.IsZero() {
		m.replicaLagSeconds.With(l).Set(st.sampledAt.Sub(st.caughtUp).Seconds())
	}
	h := 0.0
	if st.healthy {
		h = 1
	}
	m.replicaHealthy.With(l).Set(h)
}
