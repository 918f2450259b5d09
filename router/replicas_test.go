package router

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shardline/shardline"
)

// replicaOf returns the (only) replica member of a shard.
func replicaOf(t *testing.T, shard shardline.ShardID) shardline.Member {
	t.Helper()
	for _, s := range env.pg.Shards() {
		if s.ID == shard && len(s.Replicas) > 0 {
			return s.Replicas[0]
		}
	}
	t.Fatalf("shard %s has no replica", shard)
	return shardline.Member{}
}

func connectDSN(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// pauseReplay pauses WAL replay on the replica until the test ends.
func pauseReplay(t *testing.T, replica *pgx.Conn) {
	t.Helper()
	if _, err := replica.Exec(testCtx(t), "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = replica.Exec(context.Background(), "SELECT pg_wal_replay_resume()") })
}

// awaitMonitor waits until cond holds on a fresh sample of the router's
// replica monitor, for at most 20 s.
func awaitMonitor(t *testing.T, what string, cond func(map[string]shardline.ReplicaHealth) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := env.router.mon.changed.Load()
		if cond(env.router.ReplicaHealth()) {
			return
		}
		select {
		case <-*ch:
		case <-deadline:
			t.Fatalf("monitor never saw: %s (health %+v)", what, env.router.ReplicaHealth())
		}
	}
}

// readCount is a shard's replica-eligible read counters: served by the
// primary, by a replica, and sent to the primary for lag.
type readCount struct{ primary, replica, lag float64 }

func (a readCount) minus(b readCount) readCount {
	return readCount{a.primary - b.primary, a.replica - b.replica, a.lag - b.lag}
}

// readCounts reads the router's read counters of shard.
func readCounts(t *testing.T, shard shardline.ShardID) readCount {
	t.Helper()
	val := func(c prometheus.Counter) float64 {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	m := env.router.metrics
	return readCount{
		primary: val(m.reads.WithLabelValues(string(shard), "primary")),
		replica: val(m.reads.WithLabelValues(string(shard), "replica")),
		lag:     val(m.fallbacks.WithLabelValues(string(shard), fallbackLag.label())),
	}
}

// servedByReplica runs one read-only transaction and says where it ran.
func servedByReplica(t *testing.T, c *pgx.Conn) bool {
	t.Helper()
	ctx := testCtx(t)
	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var inRecovery bool
	if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		t.Fatal(err)
	}
	return inRecovery
}

func TestReplicaReadsFollowTheLagBound(t *testing.T) {
	const tenant = "lagbound"
	applySchema(t, `CREATE TABLE IF NOT EXISTS rw (tenant_id text NOT NULL, n int NOT NULL)`)
	shard := shardOf(t, tenant)
	rep := replicaOf(t, shard)
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dreplica%20-c%20shardline.max_lag%3D300ms")
	ctx := testCtx(t)

	awaitMonitor(t, "replica healthy and caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	before := readCounts(t, shard)
	if !servedByReplica(t, c) {
		t.Fatal("read-only transaction within the bound went to the primary")
	}
	if got := readCounts(t, shard).minus(before); got != (readCount{replica: 1}) {
		t.Errorf("counters after a replica read: %+v, want one replica read", got)
	}

	r := connectDSN(t, rep.DSN)
	pauseReplay(t, r)
	p := direct(t, shard)
	if _, err := p.Exec(ctx, "INSERT INTO rw VALUES ($1, -1)", tenant); err != nil {
		t.Fatal(err)
	}
	awaitMonitor(t, "replica staler than 300ms", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].LagMillis > 300
	})
	before = readCounts(t, shard)
	if servedByReplica(t, c) {
		t.Fatal("read-only transaction went to a replica beyond the bound")
	}
	if got := readCounts(t, shard).minus(before); got != (readCount{primary: 1, lag: 1}) {
		t.Errorf("counters after a read beyond the bound: %+v, want one primary read for lag", got)
	}
	if _, err := r.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	awaitMonitor(t, "replica caught up again", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].LagMillis == 0 && h[rep.Name].LagBytes == 0
	})
	if !servedByReplica(t, c) {
		t.Fatal("reads did not come back to the caught-up replica")
	}
	// Settings are visible and validated.
	var target string
	if err := c.QueryRow(ctx, "SHOW shardline.target", pgx.QueryExecModeSimpleProtocol).Scan(&target); err != nil || target != "replica" {
		t.Fatalf("SHOW shardline.target = %q, %v", target, err)
	}
	if _, err := c.Exec(ctx, "SET shardline.max_lag = 'soon'"); pgCode(err) != codeInvalidParameter {
		t.Fatalf("bad max_lag: %v", err)
	}
	if _, err := c.Exec(ctx, "SET shardline.target = 'nearest'"); pgCode(err) != codeInvalidParameter {
		t.Fatalf("bad target: %v", err)
	}
}

// TestReadYourWrites runs 10,000 write-then-read pairs in one session while
// replay on the replica is paused and resumed at random: every read must
// see the session's own write.
func TestReadYourWrites(t *testing.T) {
	const tenant = "ryw"
	applySchema(t, `CREATE TABLE IF NOT EXISTS rw (tenant_id text NOT NULL, n int NOT NULL); DELETE FROM rw WHERE tenant_id = 'ryw'`)
	shard := shardOf(t, tenant)
	rep := replicaOf(t, shard)
	awaitMonitor(t, "replica healthy", func(h map[string]shardline.ReplicaHealth) bool { return h[rep.Name].Healthy })
	// synchronous_commit on (the test servers default to off) so that a
	// commit reaches the replica at once rather than at the WAL writer's
	// next round.
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dauto%20-c%20shardline.max_lag%3D10s%20-c%20synchronous_commit%3Don")
	ctx := testCtx(t)

	r := connectDSN(t, rep.DSN)
	t.Cleanup(func() { _, _ = r.Exec(context.Background(), "SELECT pg_wal_replay_resume()") })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the fault: pause and resume replay at random
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			q := "SELECT pg_wal_replay_resume()"
			if rng.IntN(2) == 0 {
				q = "SELECT pg_wal_replay_pause()"
			}
			if _, err := r.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.IntN(40)) * time.Millisecond):
			}
		}
	}()

	const pairs = 10000
	misses, fromReplica := 0, 0
	for i := 0; i < pairs; i++ {
		if _, err := c.Exec(ctx, "INSERT INTO rw VALUES ($1, $2)", tenant, i); err != nil {
			t.Fatal(err)
		}
		// Right after a write the monitor has not yet seen a replica
		// replay it, so reads go to the primary; every 100th read waits up
		// to 200ms for a replica that has (shardline.max_wait).
		if i%100 == 0 {
			if _, err := c.Exec(ctx, "SET shardline.max_wait = '200ms'"); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		var inRecovery bool
		if err := c.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM rw WHERE tenant_id = $1 AND n = $2", tenant, i).Scan(&n, &inRecovery); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, err := c.Exec(ctx, "RESET shardline.max_wait"); err != nil {
				t.Fatal(err)
			}
		}
		if n != 1 {
			misses++
		}
		if inRecovery {
			fromReplica++
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d write-then-read pairs: %d misses, %d reads (%.1f%%) served by the replica", pairs, misses, fromReplica, 100*float64(fromReplica)/pairs)
	if misses != 0 {
		t.Fatalf("%d reads missed the session's own write", misses)
	}
	if fromReplica == 0 {
		t.Fatal("no read used the replica: the test did not exercise replica reads")
	}
}

// TestTokenCrossesSessions: a token from the writing session makes another
// session's reads causally consistent with it.
func TestTokenCrossesSessions(t *testing.T) {
	const tenant = "token1"
	applySchema(t, `CREATE TABLE IF NOT EXISTS rw (tenant_id text NOT NULL, n int NOT NULL); DELETE FROM rw WHERE tenant_id = 'token1'`)
	shard := shardOf(t, tenant)
	rep := replicaOf(t, shard)
	ctx := testCtx(t)
	r := connectDSN(t, rep.DSN)
	awaitMonitor(t, "replica caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	pauseReplay(t, r)

	w := connect(t, "options=-c%20shardline.tenant%3D"+tenant)
	if _, err := w.Exec(ctx, "INSERT INTO rw VALUES ($1, 1)", tenant); err != nil {
		t.Fatal(err)
	}
	if st := w.PgConn().TxStatus(); st != 'I' {
		t.Fatalf("transaction status after a write = %q, want 'I'", st)
	}
	token := w.PgConn().ParameterStatus("shardline.lsn")
	var shown string
	if err := w.QueryRow(ctx, "SHOW shardline.lsn", pgx.QueryExecModeSimpleProtocol).Scan(&shown); err != nil {
		t.Fatal(err)
	}
	if token == "" || shown != token {
		t.Fatalf("token: ParameterStatus %q, SHOW %q", token, shown)
	}
	if tok, err := shardline.ParseToken(token); err != nil || tok.Shard != shard {
		t.Fatalf("token %q of shard %s: %v", token, shard, err)
	}

	// Without the token, a session with a loose bound reads the paused
	// replica and misses the row: this is what the token prevents.
	loose := "options=-c%20shardline.tenant%3D" + tenant + "%20-c%20shardline.target%3Dauto%20-c%20shardline.max_lag%3D1h"
	other := connect(t, loose)
	var n int
	var inRecovery bool
	if err := other.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM rw WHERE tenant_id = $1", tenant).Scan(&n, &inRecovery); err != nil {
		t.Fatal(err)
	}
	if !inRecovery || n != 0 {
		t.Fatalf("control read without token: n=%d replica=%v; expected the paused replica to miss the row", n, inRecovery)
	}
	reader := connect(t, loose)
	if _, err := reader.Exec(ctx, "SET shardline.min_lsn = '"+token+"'"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM rw WHERE tenant_id = $1", tenant).Scan(&n, &inRecovery); err != nil {
		t.Fatal(err)
	}
	if n != 1 || inRecovery {
		t.Fatalf("read with the token: n=%d replica=%v; want the row from the primary", n, inRecovery)
	}
	if _, err := r.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	tok, _ := shardline.ParseToken(token)
	awaitMonitor(t, "replica replayed the token", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].ReplayLSN >= tok.LSN
	})
	if err := reader.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM rw WHERE tenant_id = $1", tenant).Scan(&n, &inRecovery); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !inRecovery {
		t.Fatalf("after replay caught up: n=%d replica=%v; want the row from the replica", n, inRecovery)
	}
	if _, err := reader.Exec(ctx, "SET shardline.min_lsn = 'garbage'"); pgCode(err) != codeInvalidParameter {
		t.Fatalf("bad token: %v", err)
	}
}

// TestLongReadOnlyTransactionStaysOnItsReplica: the bound is checked when
// a transaction starts; a replica that falls behind meanwhile keeps serving
// the transaction it started.
func TestLongReadOnlyTransactionStaysOnItsReplica(t *testing.T) {
	const tenant = "longro"
	applySchema(t, `CREATE TABLE IF NOT EXISTS rw (tenant_id text NOT NULL, n int NOT NULL)`)
	shard := shardOf(t, tenant)
	rep := replicaOf(t, shard)
	ctx := testCtx(t)
	awaitMonitor(t, "replica caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dreplica%20-c%20shardline.max_lag%3D300ms")
	if _, err := c.Exec(ctx, "BEGIN READ ONLY"); err != nil {
		t.Fatal(err)
	}
	var inRecovery bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("transaction start: replica=%v err=%v", inRecovery, err)
	}
	r := connectDSN(t, rep.DSN)
	pauseReplay(t, r)
	if _, err := direct(t, shard).Exec(ctx, "INSERT INTO rw VALUES ($1, 0)", tenant); err != nil {
		t.Fatal(err)
	}
	awaitMonitor(t, "replica beyond the bound", func(h map[string]shardline.ReplicaHealth) bool { return h[rep.Name].LagMillis > 300 })
	for i := 0; i < 3; i++ {
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
			t.Fatalf("statement %d of the transaction: replica=%v err=%v", i, inRecovery, err)
		}
	}
	if _, err := c.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if servedByReplica(t, c) {
		t.Fatal("the next transaction went to the lagging replica")
	}
}

// TestKilledReplica: a killed replica leaves the eligible set within two
// poll intervals, a read it was serving is retried on the primary, and it
// rejoins once back and caught up.
func TestKilledReplica(t *testing.T) {
	const tenant = "killrep"
	shard := shardOf(t, tenant)
	rep := replicaOf(t, shard)
	ctx := testCtx(t)
	awaitMonitor(t, "replica caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dauto")
	done := make(chan error, 1)
	var got int
	var inRecovery bool
	go func() {
		done <- c.QueryRow(ctx, "SELECT 7 FROM pg_sleep(2), (SELECT pg_is_in_recovery() AS r) x WHERE NOT x.r OR x.r").Scan(&got)
	}()
	// Wait until the read runs on the replica, then kill the replica.
	rc := connectDSN(t, rep.DSN)
	for {
		var n int
		if err := rc.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT 7 FROM pg_sleep%' AND state = 'active'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling another server's state
	}
	rc.Close(ctx)
	if err := env.pg.StopMember(ctx, rep.Name, "immediate"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.pg.StartMember(context.Background(), rep.Name) })
	if err := <-done; err != nil || got != 7 {
		t.Fatalf("read on the killed replica: got %d, err %v; want a retry on the primary", got, err)
	}
	// Two poll intervals after the kill the replica is out.
	samples := 0
	awaitMonitor(t, "two samples after the kill", func(map[string]shardline.ReplicaHealth) bool { samples++; return samples > 2 })
	if h := env.router.ReplicaHealth()[rep.Name]; h.Healthy {
		t.Fatalf("killed replica still healthy two samples later: %+v", h)
	}
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("read with the replica down: replica=%v err=%v", inRecovery, err)
	}
	if err := env.pg.StartMember(ctx, rep.Name); err != nil {
		t.Fatal(err)
	}
	awaitMonitor(t, "replica back and caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	for i := 0; ; i++ {
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			t.Fatal(err)
		}
		if inRecovery {
			break
		}
		if i > 50 {
			t.Fatal("reads never returned to the restarted replica")
		}
	}
}

// TestExtendedProtocolReadOnlyTransaction: drivers such as psycopg send
// BEGIN READ ONLY through the extended protocol; it is deferred like the
// simple-protocol one and the transaction may use a replica.
func TestExtendedProtocolReadOnlyTransaction(t *testing.T) {
	const tenant = "extro"
	rep := replicaOf(t, shardOf(t, tenant))
	awaitMonitor(t, "replica caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dreplica")
	ctx := testCtx(t)
	// pgconn's ExecParams is Parse/Bind/Describe/Execute/Sync, as psycopg sends it.
	extended := func(sql string) {
		t.Helper()
		if res := c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read(); res.Err != nil {
			t.Fatalf("%s: %v", sql, res.Err)
		}
	}
	extended("BEGIN READ ONLY")
	var inRecovery bool
	var ro string
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&inRecovery, &ro); err != nil {
		t.Fatal(err)
	}
	if !inRecovery || ro != "on" {
		t.Fatalf("extended BEGIN READ ONLY: replica=%v read_only=%s", inRecovery, ro)
	}
	extended("COMMIT")
	// BEGIN then SET TRANSACTION READ ONLY, both extended.
	extended("BEGIN")
	extended("SET TRANSACTION READ ONLY")
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&inRecovery, &ro); err != nil {
		t.Fatal(err)
	}
	if !inRecovery || ro != "on" {
		t.Fatalf("extended BEGIN; SET TRANSACTION READ ONLY: replica=%v read_only=%s", inRecovery, ro)
	}
	extended("COMMIT")
	// A read-write transaction begun the same way goes to the primary.
	extended("BEGIN")
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("extended BEGIN: replica=%v err=%v", inRecovery, err)
	}
	extended("ROLLBACK")
	if c.PgConn().TxStatus() != 'I' {
		t.Fatalf("status after ROLLBACK = %c", c.PgConn().TxStatus())
	}
}

// TestWriteTokenAfterCommit: the token of a transaction is taken after its
// commit, whichever way the transaction began, and never inside it.
func TestWriteTokenAfterCommit(t *testing.T) {
	const tenant = "tokcommit"
	applySchema(t, `CREATE TABLE IF NOT EXISTS rw (tenant_id text NOT NULL, n int NOT NULL)`)
	ctx := testCtx(t)
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dauto")
	d := direct(t, shardOf(t, tenant))
	lsnNow := func() shardline.LSN {
		var s string
		if err := d.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
			t.Fatal(err)
		}
		l, _ := shardline.ParseLSN(s)
		return l
	}
	tokenOf := func() shardline.LSN {
		tok, err := shardline.ParseToken(c.PgConn().ParameterStatus("shardline.lsn"))
		if err != nil {
			t.Fatal(err)
		}
		return tok.LSN
	}
	// Autocommit write: extended protocol (pgx with arguments) and simple.
	if _, err := c.Exec(ctx, "INSERT INTO rw VALUES ($1, 1)", tenant); err != nil {
		t.Fatal(err)
	}
	if got, now := tokenOf(), lsnNow(); got == 0 || got > now {
		t.Fatalf("autocommit token %s, server at %s", got, now)
	}
	for _, begin := range []string{"BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ"} {
		before := tokenOf()
		if _, err := c.Exec(ctx, begin); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO rw VALUES ($1, 2)", tenant); err != nil {
			t.Fatal(err)
		}
		if tokenOf() != before {
			t.Fatalf("%s: token moved inside the transaction", begin)
		}
		beforeCommit := lsnNow() // the commit record is written after this
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if got := tokenOf(); got <= beforeCommit {
			t.Fatalf("%s: token %s after COMMIT is not past the commit (WAL was at %s before it)", begin, got, beforeCommit)
		}
		if c.PgConn().TxStatus() != 'I' {
			t.Fatalf("status after COMMIT %q", c.PgConn().TxStatus())
		}
	}
}

// TestDefaultReadOnlySessionUsesReplicas: with target=replica, a session
// whose default_transaction_read_only is on (startup option or SET) sends
// its autocommit statements to replicas; RESET brings them back.
func TestDefaultReadOnlySessionUsesReplicas(t *testing.T) {
	const tenant = "defro"
	rep := replicaOf(t, shardOf(t, tenant))
	awaitMonitor(t, "replica caught up", func(h map[string]shardline.ReplicaHealth) bool {
		return h[rep.Name].Healthy && h[rep.Name].LagMillis == 0
	})
	ctx := testCtx(t)
	onReplica := func(c *pgx.Conn) bool {
		t.Helper()
		var r bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	started := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dreplica%20-c%20default_transaction_read_only%3Don")
	if !onReplica(started) {
		t.Fatal("startup default_transaction_read_only=on: autocommit read went to the primary")
	}
	c := connect(t, "options=-c%20shardline.tenant%3D"+tenant+"%20-c%20shardline.target%3Dreplica")
	if onReplica(c) {
		t.Fatal("target=replica without read-only: autocommit read went to a replica")
	}
	if _, err := c.Exec(ctx, "SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	if !onReplica(c) {
		t.Fatal("after SET default_transaction_read_only = on: read went to the primary")
	}
	if _, err := c.Exec(ctx, "RESET default_transaction_read_only"); err != nil {
		t.Fatal(err)
	}
	if onReplica(c) {
		t.Fatal("after RESET: read went to a replica")
	}
}

// Every fallback reason has a label of its own: the counters of a shard
// are resolved per reason (forShard), and a reason without a label would
// share the empty one.
func TestFallbackLabels(t *testing.T) {
	seen := map[string]fallback{}
	for f := noFallback + 1; f < numFallbacks; f++ {
		l := f.label()
		if prev, dup := seen[l]; l == "" || dup {
			t.Errorf("fallback %d: label %q (also fallback %d)", f, l, prev)
		}
		seen[l] = f
	}
	if noFallback.label() != "" {
		t.Errorf("noFallback has label %q", noFallback.label())
	}
}
