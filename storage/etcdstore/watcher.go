package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardline/shardline"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watcher keeps an in-memory copy of the placement that follows etcd. Each
// change publishes a new immutable *shardline.Placement; a published one is
// never modified, so readers share it without locks.
//
// Run does the work; the other methods are safe to call from any goroutine
// at any time.
type Watcher struct {
	store  *Store
	logger *slog.Logger

	cur       atomic.Pointer[shardline.Placement]
	ready     chan struct{}
	readyOnce sync.Once
	// progress asks Run for a watch progress notification, so the revision
	// advances past writes that do not touch the placement.
	progress chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every publish
	subs    map[uint64]chan *shardline.Placement
	nextSub uint64
}

// NewWatcher returns a watcher over store; nil logger discards logs. Call Run
// to start it.
func NewWatcher(store *Store, logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		store:    store,
		logger:   logger.With("component", "placement-watcher", "cluster", store.Cluster()),
		ready:    make(chan struct{}),
		progress: make(chan struct{}, 1),
		changed:  make(chan struct{}),
		subs:     make(map[uint64]chan *shardline.Placement),
	}
}

// Current returns the latest published placement, or nil before the first.
// The caller must not modify it.
func (w *Watcher) Current() *shardline.Placement { return w.cur.Load() }

// Revision returns the etcd revision of Current, or 0 before the first.
func (w *Watcher) Revision() int64 {
	if p := w.cur.Load(); p != nil {
		return p.Revision
	}
	return 0
}

// Ready is closed once the first placement is published.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// WaitRevision blocks until Current().Revision >= rev or ctx ends; then it
// returns ctx's error.
func (w *Watcher) WaitRevision(ctx context.Context, rev int64) error {
	var nudge *time.Timer
	for {
		w.mu.Lock()
		p, changed := w.cur.Load(), w.changed
		w.mu.Unlock()
		if p != nil && p.Revision >= rev {
			return nil
		}
		// rev may belong to a write outside the placement, which no event
		// will report: ask for a progress notification, and ask again now
		// and then in case the server skipped one while catching up.
		select {
		case w.progress <- struct{}{}:
		default:
		}
		if nudge == nil {
			nudge = time.NewTimer(time.Second)
			defer nudge.Stop()
		} else {
			nudge.Reset(time.Second)
		}
		select {
		case <-changed:
		case <-nudge.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for placement revision %d (have %d): %w", rev, w.Revision(), ctx.Err())
		}
	}
}

// Subscribe returns a channel that receives the current placement (if any)
// and then each newly published one. The channel holds only the latest: a
// slow reader skips intermediate maps but always gets the newest. cancel
// stops the subscription and closes the channel; it may be called more than
// once.
func (w *Watcher) Subscribe() (<-chan *shardline.Placement, func()) {
	ch := make(chan *shardline.Placement, 1)
	w.mu.Lock()
	id := w.nextSub
	w.nextSub++
	w.subs[id] = ch
	if p := w.cur.Load(); p != nil {
		ch <- p
	}
	w.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.subs, id)
			close(ch)
			w.mu.Unlock()
		})
	}
}

func (w *Watcher) publish(p *shardline.Placement) {
	if old := w.cur.Load(); old != nil && p.Revision <= old.Revision {
		return
	}
	w.mu.Lock()
	w.cur.Store(p)
	close(w.changed)
	w.changed = make(chan struct{})
	for _, ch := range w.subs {
		select {
		case <-ch:
		default:
		}
		ch <- p
	}
	w.mu.Unlock()
	w.readyOnce.Do(func() { close(w.ready) })
	w.logger.Debug("placement published", "revision", p.Revision, "shards", len(p.Shards), "overrides", len(p.Overrides))
}

// Run loads the placement, publishes it, and then follows etcd's watch
// stream from the next revision, publishing a new placement after each batch
// of changes. When the watch fails or the history it needs was compacted, it
// loads the whole placement again (after a short backoff if loading fails).
// Before the cluster is bootstrapped it waits for the slot table to appear.
// Run returns nil when ctx is cancelled; it owns no goroutine after that.
func (w *Watcher) Run(ctx context.Context) error {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		progressed, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = minBackoff
		}
		if err == nil {
			continue
		}
		w.logger.Warn("placement watch interrupted; reloading", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session loads, publishes and follows the watch until it fails. It reports
// whether it published anything; a nil error asks for an immediate reload.
func (w *Watcher) session(ctx context.Context) (progressed bool, err error) {
	p, rev, err := w.store.load(ctx)
	if errors.Is(err, shardline.ErrNoPlacement) {
		w.logger.Info("no placement yet; waiting for bootstrap", "revision", rev)
		return true, w.awaitBootstrap(ctx, rev)
	}
	if err != nil {
		return false, err
	}
	w.publish(p)
	// The published placement may be newer than p (never older).
	cur := w.cur.Load()

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	cli := w.store.cli
	ch := cli.Watch(wctx, w.store.Prefix(), clientv3.WithPrefix(), clientv3.WithRev(cur.Revision+1), clientv3.WithProgressNotify())
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-w.progress:
			if err := cli.RequestProgress(wctx); err != nil {
				w.logger.Debug("watch progress request failed", "err", err)
			}
		case wresp, ok := <-ch:
			if !ok {
				return true, errors.New("etcdstore: placement watch closed")
			}
			if wresp.CompactRevision != 0 {
				w.logger.Info("placement watch fell behind compaction; reloading", "compact_revision", wresp.CompactRevision)
				return true, nil
			}
			if err := wresp.Err(); err != nil {
				return true, fmt.Errorf("placement watch: %w", err)
			}
			if wresp.IsProgressNotify() {
				if wresp.Header.Revision > cur.Revision {
					next := *cur
					next.Revision = wresp.Header.Revision
					cur = &next
					w.publish(cur)
				}
				continue
			}
			next, err := w.apply(cur, wresp.Events)
			if err != nil {
				return true, err
			}
			if next != cur {
				cur = next
				w.publish(cur)
			}
		}
	}
}

// awaitBootstrap returns once the slot table is created after rev.
func (w *Watcher) awaitBootstrap(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wresp := range w.store.cli.Watch(wctx, w.store.keys.slots(), clientv3.WithRev(rev+1)) {
		if wresp.CompactRevision != 0 {
			return nil
		}
		if err := wresp.Err(); err != nil {
			return fmt.Errorf("watch for bootstrap: %w", err)
		}
		if len(wresp.Events) > 0 {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("etcdstore: watch for bootstrap closed")
}

// apply returns cur with events applied, copying only what changed; it
// returns cur itself when no event touched the placement. Events must be one
// or more whole revisions (etcd never splits a revision across responses).
func (w *Watcher) apply(cur *shardline.Placement, events []*clientv3.Event) (*shardline.Placement, error) {
	next := *cur
	touched, shardsCopied, overridesCopied := false, false, false
	k := w.store.keys
	for _, ev := range events {
		key := string(ev.Kv.Key)
		del := ev.Type == mvccpb.DELETE
		switch {
		case key == k.slots():
			if del {
				return nil, fmt.Errorf("slot table deleted at revision %d: %w", ev.Kv.ModRevision, shardline.ErrNoPlacement)
			}
			slots, err := decodeSlots(ev.Kv.Value)
			if err != nil {
				return nil, err
			}
			next.Slots = slots
		case hasPrefix(key, k.shardPrefix()):
			if !shardsCopied {
				next.Shards = maps.Clone(cur.Shards)
				shardsCopied = true
			}
			if del {
				id, _ := trimmed(key, k.shardPrefix())
				delete(next.Shards, shardline.ShardID(id))
				break
			}
			sh, err := w.store.decodeShard(ev.Kv)
			if err != nil {
				return nil, err
			}
			next.Shards[sh.ID] = sh
		case hasPrefix(key, k.tenantPrefix()):
			if !overridesCopied {
				next.Overrides = maps.Clone(cur.Overrides)
				overridesCopied = true
			}
			id, _ := trimmed(key, k.tenantPrefix())
			if del {
				delete(next.Overrides, shardline.TenantID(id))
				break
			}
			rec, err := w.store.decodeTenant(ev.Kv)
			if err != nil {
				return nil, err
			}
			if rec.Shard == "" {
				delete(next.Overrides, rec.Tenant)
			} else {
				next.Overrides[rec.Tenant] = rec.Shard
			}
		default:
			continue // moves, routers, election: not part of the map
		}
		touched = true
		next.Revision = max(next.Revision, ev.Kv.ModRevision)
	}
	if !touched {
		return cur, nil
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("placement at revision %d: %w", next.Revision, err)
	}
	return &next, nil
}

func hasPrefix(key, prefix string) bool {
	_, ok := trimmed(key, prefix)
	return ok
}
