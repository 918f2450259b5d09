package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	// Primaries and Replicas are every shard's primary and replica DSNs
	// (the drill creates its tables on the primaries and pauses replay on
	// the replicas).
	Primaries []string
	Replicas  []string
	// Tenants the workers write as; spread them over the shards.
	Tenants []string
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

// Validate fills defaults and checks the configuration.
func (c *ReplicaLagConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.RouterDSN == "":
		return errors.New("drill: RouterDSN is required")
	case len(c.Primaries) == 0:
		return errors.New("drill: no shard primaries")
	case len(c.Replicas) == 0:
		return errors.New("drill: the cluster has no replicas: start it with --replicas 1 or more")
	case len(c.Tenants) == 0:
		return errors.New("drill: no tenants")
	case c.Duration < time.Second || c.Duration > time.Hour:
		return fmt.Errorf("drill: duration %s out of range 1s..1h", c.Duration)
	case c.Workers < 1 || c.Workers > 64:
		return fmt.Errorf("drill: workers %d out of range 1..64", c.Workers)
	}
	return nil
}

// ReplicaLagReport is the drill's outcome.
type ReplicaLagReport struct {
	Duration       time.Duration `json:"duration_ns"`
	Writes         int           `json:"writes"`
	ReadsPrimary   int           `json:"reads_primary"`
	ReadsReplica   int           `json:"reads_replica"`
	StaleReads     int           `json:"stale_reads"`
	RYWMisses      int           `json:"read_your_writes_misses"`
	Pauses         int           `json:"replay_pauses"`
	ReadP50        time.Duration `json:"read_p50_ns"`
	ReadP99        time.Duration `json:"read_p99_ns"`
	MaxStaleness   time.Duration `json:"max_replica_staleness_ns"`
	MaxLag         time.Duration `json:"max_lag_ns"`
	Errors         int           `json:"errors"`
	FirstViolation string        `json:"first_violation,omitempty"`
}

// OK reports whether every invariant held.
func (r *ReplicaLagReport) OK() bool { return r.StaleReads == 0 && r.RYWMisses == 0 && r.Errors == 0 }

const drillSchema = `
CREATE TABLE IF NOT EXISTS shardline_drill_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL);
INSERT INTO shardline_drill_heartbeat VALUES (1, clock_timestamp()) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS shardline_drill_rw (tenant_id text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (tenant_id, seq));`

// RunReplicaLag runs the drill. It returns an error only when the drill
// could not run; broken invariants are in the report (see OK).
func RunReplicaLag(ctx context.Context, cfg ReplicaLagConfig) (*ReplicaLagReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, dsn := range cfg.Primaries {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("drill: connect to a primary: %w", err)
		}
		_, err = c.Exec(ctx, drillSchema)
		c.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("drill: create drill tables: %w", err)
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	rep := &ReplicaLagReport{MaxLag: cfg.MaxLag}
	var mu sync.Mutex // guards rep and lat
	var lat []time.Duration
	var wg sync.WaitGroup
	var failMu sync.Mutex // guards rep.FirstViolation only
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if rep.FirstViolation == "" {
			rep.FirstViolation = fmt.Sprintf(format, args...)
		}
	}
	start := time.Now()

	// Heartbeats on every primary.
	for _, dsn := range cfg.Primaries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := heartbeat(runCtx, dsn, cfg.Heartbeat); err != nil && runCtx.Err() == nil {
				cfg.Logger.Error("heartbeat", "err", err)
				mu.Lock()
				rep.Errors++
				mu.Unlock()
			}
		}()
	}
	// The fault: pause and resume replay on the replicas at random.
	for i, dsn := range cfg.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := flapReplay(runCtx, dsn, rand.New(rand.NewPCG(cfg.Seed, uint64(i))))
			mu.Lock()
			rep.Pauses += n
			if err != nil && runCtx.Err() == nil {
				cfg.Logger.Error("pause/resume replay", "err", err)
				rep.Errors++
			}
			mu.Unlock()
		}()
	}
	// Sessions: writers (write then read their own write) and readers.
	for w := 0; w < 2*cfg.Workers; w++ {
		tenant := cfg.Tenants[w%len(cfg.Tenants)]
		writer := w < cfg.Workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := runSession(runCtx, cfg, tenant, writer, int64(w), fail)
			if err != nil && runCtx.Err() == nil {
				cfg.Logger.Error("session", "tenant", tenant, "err", err)
				fail("session %s: %v", tenant, err)
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
func runSession(ctx context.Context, cfg ReplicaLagConfig, tenant string, writer bool, id int64, fail func(string, ...any)) (sessionStats, error) {
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
	// The slack covers the heartbeat interval and a commit's own latency.
	slack := cfg.Heartbeat + 20*time.Millisecond
	for seq := id << 40; ctx.Err() == nil; seq++ {
		if writer {
			if _, err := c.Exec(ctx, "INSERT INTO shardline_drill_rw VALUES ($1, $2)", tenant, seq); err != nil {
				return st, ignoreDone(ctx, err)
			}
			st.writes++
		}
		t0 := time.Now()
		var n int
		var hb time.Time
		var onReplica bool
		err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM shardline_drill_rw WHERE tenant_id = $1 AND seq = $2),
			(SELECT ts FROM shardline_drill_heartbeat WHERE id = 1), pg_is_in_recovery()`, tenant, seq).Scan(&n, &hb, &onReplica)
		if err != nil {
			return st, ignoreDone(ctx, err)
		}
		st.lat = append(st.lat, time.Since(t0))
		if onReplica {
			st.replica++
			staleness := t0.Sub(hb) - slack
			st.maxStale = max(st.maxStale, staleness)
			if staleness > cfg.MaxLag {
				st.stale++
				fail("stale read: tenant %s saw the heartbeat of %s at %s, %s beyond max_lag %s",
					tenant, hb.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano), staleness-cfg.MaxLag, cfg.MaxLag)
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

func heartbeat(ctx context.Context, dsn string, every time.Duration) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := c.Exec(ctx, "UPDATE shardline_drill_heartbeat SET ts = clock_timestamp() WHERE id = 1"); err != nil {
			return ignoreDone(ctx, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
