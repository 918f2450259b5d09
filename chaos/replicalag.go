package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplicaLagConfig configures the replica-lag drill: a write-then-read
// workload through the router while WAL replay on the replicas is paused
// and resumed at random. It checks invariant 4 of ARCHITECTURE.md: no read
// served by a replica is staler than the session's bound, and no read
// misses the session's own writes.
type ReplicaLagConfig struct {
	// RouterDSN reaches the router.
	RouterDSN string
	// Shards are the cluster's shards: the drill creates its tables on the
	// primaries, pauses replay on the replicas, and runs sessions as each
	// shard's tenant.
	Shards []DrillShard
	// Duration of the workload (default 30 s).
	Duration time.Duration
	// Workers is the number of writing sessions (default 4); as many
	// read-only sessions run beside them.
	Workers int
	// MaxLag is the sessions' shardline.max_lag (default 500ms).
	MaxLag time.Duration
	// Heartbeat is how often each primary's heartbeat row is updated
	// (default 20ms); staleness is measured against it.
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Progress receives a line per second; nil discards.
	Progress io.Writer
	// Seed makes the fault schedule repeatable.
	Seed uint64
}

func (c *ReplicaLagConfig) setDefaults() {
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.MaxLag == 0 {
		c.MaxLag = 500 * time.Millisecond
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 20 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// DrillShard is one shard as the drill sees it.
type DrillShard struct {
	// ID, when set, is the shard's id: the drill checks that the router
	// routes Tenant there (that it is this cluster's router) before it
	// starts.
	ID       string
	Primary  string   // DSN
	Replicas []string // DSNs
	Tenant   string   // a tenant that lives on this shard
}

// ErrRouterUnreachable is wrapped by RunReplicaLag's error when the drill
// cannot connect through the router, or the router is not this cluster's;
// it is found before the drill changes anything.
var ErrRouterUnreachable = errors.New("drill: cannot connect to the router")

// Validate fills defaults and checks the configuration.
func (c *ReplicaLagConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.RouterDSN == "":
		return errors.New("drill: RouterDSN is required")
	case len(c.Shards) == 0:
		return errors.New("drill: no shards")
	case c.Duration < time.Second || c.Duration > time.Hour:
		return fmt.Errorf("drill: duration %s out of range 1s..1h", c.Duration)
	case c.Workers < 1 || c.Workers > 64:
		return fmt.Errorf("drill: workers %d out of range 1..64", c.Workers)
	}
	replicas := 0
	for _, sh := range c.Shards {
		replicas += len(sh.Replicas)
		if sh.Primary == "" || sh.Tenant == "" {
			return errors.New("drill: every shard needs a primary and a tenant")
		}
	}
	if replicas == 0 {
		return errors.New("drill: the cluster has no replicas: start it with --replicas 1 or more")
	}
	return nil
}

// ReplicaLagReport is the drill's outcome.
type ReplicaLagReport struct {
	Duration     time.Duration `json:"duration_ns"`
	Writes       int           `json:"writes"`
	ReadsPrimary int           `json:"reads_primary"`
	ReadsReplica int           `json:"reads_replica"`
	StaleReads   int           `json:"stale_reads"`
	RYWMisses    int           `json:"read_your_writes_misses"`
	Pauses       int           `json:"replay_pauses"`
	ReadP50      time.Duration `json:"read_p50_ns"`
	ReadP99      time.Duration `json:"read_p99_ns"`
	MaxStaleness time.Duration `json:"max_replica_staleness_ns"`
	MaxLag       time.Duration `json:"max_lag_ns"`
	// Errors counts sessions, heartbeats and fault injectors that failed
	// while the drill ran (not invariant violations): with any, the
	// invariants were checked on less than the whole workload.
	Errors         int    `json:"errors"`
	FirstViolation string `json:"first_violation,omitempty"`
	FirstError     string `json:"first_error,omitempty"`
}

// OK reports whether every invariant held over the whole workload.
func (r *ReplicaLagReport) OK() bool { return !r.Violated() && r.Errors == 0 }

// Violated reports whether a read broke an invariant.
func (r *ReplicaLagReport) Violated() bool { return r.StaleReads > 0 || r.RYWMisses > 0 }

const drillSchema = `
CREATE TABLE IF NOT EXISTS shardline_drill_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL);
INSERT INTO shardline_drill_heartbeat VALUES (1, clock_timestamp()) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS shardline_drill_rw (tenant_id text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (tenant_id, seq));
TRUNCATE shardline_drill_rw;`

// RunReplicaLag runs the drill. It returns an error only when the drill
// could not run, and then it has paused no replay: a router it cannot
// connect through (or that routes a shard's tenant elsewhere) is an error
// wrapping ErrRouterUnreachable, found before it creates its tables.
// Broken invariants and failures while it ran are in the report (see OK).
func RunReplicaLag(ctx context.Context, cfg ReplicaLagConfig) (*ReplicaLagReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, sh := range cfg.Shards {
		if err := checkRouter(ctx, cfg, sh); err != nil {
			return nil, err
		}
	}
	for _, sh := range cfg.Shards {
		if err := createDrillTables(ctx, sh); err != nil {
			return nil, err
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	rep := &ReplicaLagReport{MaxLag: cfg.MaxLag}
	var mu sync.Mutex // guards rep and lat
	var lat []time.Duration
	var wg sync.WaitGroup
	var failMu sync.Mutex // guards rep.FirstViolation and rep.FirstError only
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if rep.FirstViolation == "" {
			rep.FirstViolation = fmt.Sprintf(format, args...)
		}
	}
	failed := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if rep.FirstError == "" {
			rep.FirstError = fmt.Sprintf(format, args...)
		}
	}
	start := time.Now()

	// Heartbeats on every primary.
	hbs := make([]*beats, len(cfg.Shards))
	for i, sh := range cfg.Shards {
		hbs[i] = &beats{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hbs[i].run(runCtx, sh.Primary, cfg.Heartbeat); err != nil && runCtx.Err() == nil {
				cfg.Logger.Error("heartbeat", "err", err)
				failed("heartbeat on a primary: %v", err)
				mu.Lock()
				rep.Errors++
				mu.Unlock()
			}
		}()
	}
	// The fault: pause and resume replay on the replicas at random.
	var replicas []string
	for _, sh := range cfg.Shards {
		replicas = append(replicas, sh.Replicas...)
	}
	for i, dsn := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := flapReplay(runCtx, dsn, rand.New(rand.NewPCG(cfg.Seed, uint64(i))))
			mu.Lock()
			rep.Pauses += n
			if err != nil && runCtx.Err() == nil {
				cfg.Logger.Error("pause/resume replay", "err", err)
				failed("pause/resume replay: %v", err)
				rep.Errors++
			}
			mu.Unlock()
		}()
	}
	// Sessions: writers (write then read their own write) and readers.
	for w := 0; w < 2*cfg.Workers; w++ {
		shard := w % len(cfg.Shards)
		tenant := cfg.Shards[shard].Tenant
		writer := w < cfg.Workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := runSession(runCtx, cfg, tenant, hbs[shard], writer, int64(w), fail)
			if err != nil && runCtx.Err() == nil {
				cfg.Logger.Error("session", "tenant", tenant, "err", err)
				failed("session %s: %v", tenant, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && runCtx.Err() == nil {
				rep.Errors++
			}
			rep.Writes += st.writes
			rep.ReadsPrimary += st.primary
			rep.ReadsReplica += st.replica
			rep.StaleReads += st.stale
			rep.RYWMisses += st.misses
			rep.MaxStaleness = max(rep.MaxStaleness, st.maxStale)
			lat = append(lat, st.lat...)
		}()
	}
	// Progress once a second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				fmt.Fprintf(cfg.Progress, "replica-lag drill: %s of %s\n", time.Since(start).Round(time.Second), cfg.Duration)
			}
		}
	}()
	wg.Wait()
	rep.Duration = time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		rep.ReadP50 = lat[len(lat)/2]
		rep.ReadP99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return rep, nil
}

type sessionStats struct {
	writes, primary, replica, stale, misses int
	maxStale                                time.Duration
	lat                                     []time.Duration
}

// runSession is one client session through the router with
// shardline.target=auto and the drill's bound.
func runSession(ctx context.Context, cfg ReplicaLagConfig, tenant string, hb *beats, writer bool, id int64, fail func(string, ...any)) (sessionStats, error) {
	var st sessionStats
	opts := fmt.Sprintf("-c shardline.tenant=%s -c shardline.target=auto -c shardline.max_lag=%dms -c synchronous_commit=on",
		tenant, cfg.MaxLag.Milliseconds())
	dsn, err := withOptions(cfg.RouterDSN, opts)
	if err != nil {
		return st, err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return st, err
	}
	defer c.Close(context.Background())
	for seq := id << 40; ctx.Err() == nil; seq++ {
		if writer {
			if _, err := c.Exec(ctx, "INSERT INTO shardline_drill_rw VALUES ($1, $2)", tenant, seq); err != nil {
				return st, ignoreDone(ctx, err)
			}
			st.writes++
		}
		t0 := time.Now()
		var n int
		var seen time.Time
		var onReplica bool
		err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM shardline_drill_rw WHERE tenant_id = $1 AND seq = $2),
			(SELECT ts FROM shardline_drill_heartbeat WHERE id = 1), pg_is_in_recovery()`, tenant, seq).Scan(&n, &seen, &onReplica)
		if err != nil {
			return st, ignoreDone(ctx, err)
		}
		st.lat = append(st.lat, time.Since(t0))
		if onReplica {
			st.replica++
			staleness := hb.staleness(seen, t0)
			st.maxStale = max(st.maxStale, staleness)
			if staleness > cfg.MaxLag {
				st.stale++
				fail("stale read: tenant %s read at %s missed a heartbeat committed %s earlier (max_lag %s)",
					tenant, t0.Format(time.RFC3339Nano), staleness, cfg.MaxLag)
			}
		} else {
			st.primary++
		}
		if writer && n != 1 {
			st.misses++
			fail("read-your-writes miss: tenant %s did not see its write %d (replica=%v)", tenant, seq, onReplica)
		}
	}
	return st, nil
}

// checkRouter connects through the router as sh's tenant and, when sh.ID
// is set, checks that the router routes the tenant to sh.
func checkRouter(ctx context.Context, cfg ReplicaLagConfig, sh DrillShard) error {
	dsn, err := withOptions(cfg.RouterDSN, "-c shardline.tenant="+sh.Tenant)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrRouterUnreachable, cfg.RouterDSN, connectCause(err))
	}
	defer c.Close(context.Background())
	var shard string
	if err := c.QueryRow(ctx, "SHOW shardline.shard").Scan(&shard); err != nil {
		return fmt.Errorf("%w at %s: SHOW shardline.shard: %v (is it a Shardline router?)", ErrRouterUnreachable, cfg.RouterDSN, err)
	}
	if sh.ID != "" && shard != sh.ID {
		return fmt.Errorf("%w at %s: it routes tenant %s to shard %s, the cluster says %s: it is another cluster's router",
			ErrRouterUnreachable, cfg.RouterDSN, sh.Tenant, shard, sh.ID)
	}
	return nil
}

// connectCause is what a failed pgx.Connect says, without pgx's
// "failed to connect to `user=... database=...`" preamble when the cause
// is the network.
func connectCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

// createDrillTables creates the drill's tables on a shard's primary and
// waits until every replica has replayed them: a replica within the bound
// may legitimately not have them yet, which is not what the drill tests.
func createDrillTables(ctx context.Context, sh DrillShard) error {
	c, err := pgx.Connect(ctx, sh.Primary)
	if err != nil {
		return fmt.Errorf("drill: connect to a primary: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, drillSchema); err != nil {
		return fmt.Errorf("drill: create drill tables: %w", err)
	}
	var lsn string
	if err := c.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return fmt.Errorf("drill: read the primary's WAL position: %w", err)
	}
	for _, dsn := range sh.Replicas {
		if err := awaitReplay(ctx, dsn, lsn); err != nil {
			return err
		}
	}
	return nil
}

// awaitReplay polls a replica until it has replayed lsn (resuming replay a
// previous drill may have left paused), for at most 30 s.
func awaitReplay(ctx context.Context, dsn, lsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("drill: connect to a replica: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		return fmt.Errorf("drill: resume replay: %w", err)
	}
	for {
		var done bool
		if err := c.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&done); err != nil {
			return fmt.Errorf("drill: wait for a replica to replay the drill tables: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drill: a replica did not replay the drill tables: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond): // polling another server's state
		}
	}
}

// beats is one primary's heartbeat writer and what it wrote: each value
// and when its commit was acknowledged. A replica read that returns value v
// and starts at t0 missed every later value; the oldest of those committed
// at c, so the read was at least t0-c stale. Measuring against the
// acknowledged commits (not an assumed rate) keeps a slow or stalled
// heartbeat from looking like a stale replica.
type beats struct {
	mu   sync.Mutex
	vals []time.Time // written values, increasing
	acks []time.Time // when each commit was acknowledged
}

func (b *beats) run(ctx context.Context, dsn string, every time.Duration) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v := time.Now().Truncate(time.Microsecond) // timestamptz keeps microseconds
		if _, err := c.Exec(ctx, "UPDATE shardline_drill_heartbeat SET ts = $1 WHERE id = 1", v); err != nil {
			return ignoreDone(ctx, err)
		}
		ack := time.Now()
		b.mu.Lock()
		b.vals = append(b.vals, v)
		b.acks = append(b.acks, ack)
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// staleness returns how stale a read that started at t0 and saw value seen
// was, at least: 0 when it missed no heartbeat committed before t0.
func (b *beats) staleness(seen, t0 time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, _ := slices.BinarySearchFunc(b.vals, seen, func(v, s time.Time) int { return v.Compare(s) })
	for ; i < len(b.vals) && !b.vals[i].After(seen); i++ {
	}
	if i >= len(b.vals) || !b.acks[i].Before(t0) {
		return 0
	}
	return t0.Sub(b.acks[i])
}

// flapReplay pauses and resumes WAL replay at random (pauses of 0 to 1.5
// s), and always leaves replay resumed.
func flapReplay(ctx context.Context, dsn string, rng *rand.Rand) (int, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	defer c.Exec(context.Background(), "SELECT pg_wal_replay_resume()")
	pauses := 0
	for {
		wait := time.Duration(rng.IntN(1500)) * time.Millisecond
		q := "SELECT pg_wal_replay_resume()"
		if rng.IntN(2) == 0 {
			q = "SELECT pg_wal_replay_pause()"
			pauses++
		}
		if _, err := c.Exec(ctx, q); err != nil {
			return pauses, ignoreDone(ctx, err)
		}
		select {
		case <-ctx.Done():
			return pauses, nil
		case <-time.After(wait):
		}
	}
}

func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// withOptions adds libpq options to a URL DSN. Spaces become %20: libpq
// does not read '+' as a space.
func withOptions(dsn, opts string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("router DSN: %w", err)
	}
	q := u.Query()
	q.Del("options")
	enc := q.Encode()
	if enc != "" {
		enc += "&"
	}
	u.RawQuery = enc + "options=" + strings.ReplaceAll(url.QueryEscape(opts), "+", "%20")
	return u.String(), nil
}
