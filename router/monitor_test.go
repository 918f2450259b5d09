package router

import (
	"context"
	"testing"
	"time"

	"github.com/shardline/shardline"
)

// TestMonitorCaughtUpAfterSegmentSwitch: after a WAL segment switch on an
// idle primary its insert position points past the new segment's page
// header while a replica that has replayed everything reports the segment
// boundary. A fresh monitor must still see that replica as caught up (a
// fresh cluster is in this state until its first write), not as behind
// every sample.
func TestMonitorCaughtUpAfterSegmentSwitch(t *testing.T) {
	needCluster(t)
	ctx := testCtx(t)
	primary := direct(t, "s1")
	rep := replicaOf(t, "s1")
	replica := connectDSN(t, rep.DSN)
	var seg int64
	if err := primary.QueryRow(ctx, "SELECT pg_size_bytes(current_setting('wal_segment_size'))").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	insertLSN := func() shardline.LSN {
		t.Helper()
		var s string
		if err := primary.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
			t.Fatal(err)
		}
		l, err := shardline.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// Another record (the checkpointer's, the bgwriter's) can land between
	// the switch and the sample; then the state under test is gone, and
	// the switch is repeated.
	for attempt := 1; attempt <= 5; attempt++ {
		if _, err := primary.Exec(ctx, "SELECT pg_logical_emit_message(false, 'shardline-test', 'x'), pg_switch_wal()"); err != nil {
			t.Fatal(err)
		}
		before := insertLSN()
		if uint64(before)%uint64(seg) != walLongHeader {
			t.Logf("attempt %d: insert position %s is not past a segment header; again", attempt, before)
			continue
		}
		boundary := before - walLongHeader
		deadline := time.Now().Add(20 * time.Second)
		for {
			var s string
			if err := replica.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text").Scan(&s); err != nil {
				t.Fatal(err)
			}
			if l, err := shardline.ParseLSN(s); err == nil && l >= boundary {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica never replayed to %s (at %s)", boundary, s)
			}
			time.Sleep(5 * time.Millisecond) // polling the replica: there is nothing to wait on
		}
		m := newMonitor(env.watcher, time.Hour, nil)
		m.sample(ctx)
		for _, c := range m.conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
		if after := insertLSN(); after != before {
			t.Logf("attempt %d: WAL moved from %s to %s during the sample; again", attempt, before, after)
			continue
		}
		st := m.state.Load().replicas[rep.Name]
		if st == nil || !st.healthy {
			t.Fatalf("replica %s not sampled healthy: %+v", rep.Name, st)
		}
		if st.caughtUp.IsZero() {
			t.Fatalf("replica replayed to %s, primary inserts at %s after a segment switch: caught up at no sample (lag %d bytes)", st.replay, before, st.lagBytes)
		}
		if st.lagBytes != 0 {
			t.Errorf("lag %d bytes, want 0", st.lagBytes)
		}
		if !st.caughtUp.Equal(st.sampledAt) {
			t.Errorf("caught up at %v, want the sample's own time %v", st.caughtUp, st.sampledAt)
		}
		return
	}
	t.Fatal("the primary kept writing WAL between switch and sample in 5 attempts; the state under test never held")
}
