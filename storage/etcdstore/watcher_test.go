package etcdstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
)

// runWatcher runs w until the test ends and checks that Run returns nil
// promptly once its context is cancelled.
func runWatcher(t *testing.T, w *etcdstore.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWatcherFollowsChanges(t *testing.T) {
	s := newStore(t, etcdtest.Start(t))
	w := etcdstore.NewWatcher(s, nil)
	if w.Current() != nil || w.Revision() != 0 {
		t.Fatal("watcher has a placement before Run")
	}
	sub, cancelSub := w.Subscribe()
	defer cancelSub()
	runWatcher(t, w)

	// Started before bootstrap: it waits, then publishes.
	select {
	case <-w.Ready():
		t.Fatal("ready before bootstrap")
	case <-time.After(100 * time.Millisecond):
	}
	p0, err := s.Bootstrap(t.Context(), testShards(2))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Ready():
	case <-bounded(t).Done():
		t.Fatal("not ready 10s after bootstrap")
	}
	if err := w.WaitRevision(bounded(t), p0.Revision); err != nil {
		t.Fatal(err)
	}
	first := w.Current()
	if len(first.Shards) != 2 || first.Slots[0] != "s1" {
		t.Fatalf("first placement %+v", first)
	}

	rec, err := s.PinTenant(t.Context(), "acme", "s2")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitRevision(bounded(t), rec.ModRevision); err != nil {
		t.Fatal(err)
	}
	got := w.Current()
	if got.Overrides["acme"] != "s2" || got.Revision < rec.ModRevision {
		t.Fatalf("after pin: revision %d overrides %v", got.Revision, got.Overrides)
	}
	if _, ok := first.Overrides["acme"]; ok {
		t.Fatal("a published placement was modified")
	}

	rec, err = s.UnpinTenant(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitRevision(bounded(t), rec.ModRevision); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Current().Overrides["acme"]; ok {
		t.Fatal("override still there after unpin")
	}
	if _, ok := got.Overrides["acme"]; !ok {
		t.Fatal("a published placement was modified by unpin")
	}

	// The subscription holds the newest placement.
	var last *shardline.Placement
	for last == nil || last.Revision < rec.ModRevision {
		select {
		case last = <-sub:
		case <-bounded(t).Done():
			t.Fatalf("subscriber stuck at %v", last)
		}
	}

	// A write outside the placement advances the revision too, through a
	// progress notification.
	put, err := s.Client().Put(t.Context(), "/elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitRevision(bounded(t), put.Header.Revision); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := w.WaitRevision(ctx, put.Header.Revision+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRevision of a future revision = %v", err)
	}
}

func TestSubscribeCancel(t *testing.T) {
	s, p := bootstrapped(t, 1)
	w := etcdstore.NewWatcher(s, nil)
	runWatcher(t, w)
	if err := w.WaitRevision(bounded(t), p.Revision); err != nil {
		t.Fatal(err)
	}
	ch, cancel := w.Subscribe()
	if got := <-ch; got != w.Current() {
		t.Fatal("subscription did not start with the current placement")
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	// Publishing after a cancelled subscription must not block or panic.
	rec, err := s.PinTenant(t.Context(), "acme", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitRevision(bounded(t), rec.ModRevision); err != nil {
		t.Fatal(err)
	}
}
