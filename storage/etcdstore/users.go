package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardline/shardline"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Users: the router's client credentials under users/<name>. The store
// checks a record's name, kind and tenants (shardline.User.Validate); the
// verifier's format is the caller's to check (the auth package knows it).

func (s *Store) decodeUser(kv *mvccpb.KeyValue) (shardline.User, error) {
	name, ok := trimmed(string(kv.Key), s.keys.userPrefix())
	var u shardline.User
	if !ok {
		return u, fmt.Errorf("etcdstore: key %q is not a user key", kv.Key)
	}
	if err := json.Unmarshal(kv.Value, &u); err != nil {
		return u, fmt.Errorf("decode user %s: %w", name, err)
	}
	if u.Name != name {
		return u, fmt.Errorf("etcdstore: user record at %q names user %q", kv.Key, u.Name)
	}
	u.ModRevision = kv.ModRevision
	return u, nil
}

// AddUser creates u's record (Created is set to now when zero) and returns
// it as stored. Errors wrap shardline.ErrInvalidUser, ErrInvalidTenant, or
// ErrUserExists when the name has a record.
func (s *Store) AddUser(ctx context.Context, u shardline.User) (shardline.User, error) {
	if err := u.Validate(); err != nil {
		return shardline.User{}, fmt.Errorf("add user: %w", err)
	}
	if u.Created.IsZero() {
		u.Created = time.Now().UTC()
	}
	b, err := json.Marshal(u)
	if err != nil {
		return shardline.User{}, fmt.Errorf("encode user %s: %w", u.Name, err)
	}
	key := s.keys.user(u.Name)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return shardline.User{}, fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if !resp.Succeeded {
		return shardline.User{}, fmt.Errorf("add user: %w", shardline.UserExists(u.Name))
	}
	u.ModRevision = resp.Header.Revision
	return u, nil
}

// GetUser returns name's record, or an error wrapping
// shardline.ErrUserNotFound (or ErrInvalidUser for a name no record can
// have).
func (s *Store) GetUser(ctx context.Context, name string) (shardline.User, error) {
	if err := shardline.ValidateUserName(name); err != nil {
		return shardline.User{}, err
	}
	resp, err := s.cli.Get(ctx, s.keys.user(name))
	if err != nil {
		return shardline.User{}, fmt.Errorf("get user %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return shardline.User{}, fmt.Errorf("get user: %w", shardline.UserNotFound(name))
	}
	return s.decodeUser(resp.Kvs[0])
}

// ListUsers returns every user, sorted by name.
func (s *Store) ListUsers(ctx context.Context) ([]shardline.User, error) {
	resp, err := s.cli.Get(ctx, s.keys.userPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := make([]shardline.User, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		u, err := s.decodeUser(kv)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b shardline.User) int { return strings.Compare(a.Name, b.Name) })
	return users, nil
}

// SetUserVerifier replaces name's verifier (a password change) in a
// transaction conditioned on the record it read, and returns the record
// after the change. Errors wrap shardline.ErrUserNotFound, ErrInvalidUser or
// ErrConflict (the record kept changing).
func (s *Store) SetUserVerifier(ctx context.Context, name, verifier string) (shardline.User, error) {
	var out shardline.User
	err := s.retry(ctx, "set password of user "+name, func() (bool, error) {
		u, err := s.GetUser(ctx, name)
		if err != nil {
			return false, err
		}
		u.Verifier = verifier
		if err := u.Validate(); err != nil {
			return false, err
		}
		b, err := json.Marshal(u)
		if err != nil {
			return false, fmt.Errorf("encode user %s: %w", name, err)
		}
		key := s.keys.user(name)
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", u.ModRevision)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return false, fmt.Errorf("set password of user %s: %w", name, err)
		}
		if !resp.Succeeded {
			return false, nil
		}
		u.ModRevision = resp.Header.Revision
		out = u
		return true, nil
	})
	return out, err
}

// RemoveUser deletes name's record and returns the etcd revision of the
// delete (for UserWatcher.WaitRevision). Errors wrap
// shardline.ErrUserNotFound or ErrInvalidUser. Sessions the user has open
// stay open; new ones are refused once the routers' watchers see the
// removal.
func (s *Store) RemoveUser(ctx context.Context, name string) (int64, error) {
	if err := shardline.ValidateUserName(name); err != nil {
		return 0, err
	}
	resp, err := s.cli.Delete(ctx, s.keys.user(name))
	if err != nil {
		return 0, fmt.Errorf("remove user %s: %w", name, err)
	}
	if resp.Deleted == 0 {
		return 0, fmt.Errorf("remove user: %w", shardline.UserNotFound(name))
	}
	return resp.Header.Revision, nil
}

// UserWatcher keeps an in-memory copy of the users that follows etcd, for
// the router: Lookup is a map read under an atomic pointer, so a session
// can call it on the event loop. Run does the work; the other methods are
// safe to call from any goroutine at any time.
type UserWatcher struct {
	store     *Store
	logger    *slog.Logger
	cur       atomic.Pointer[userSet]
	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every publish
}

// userSet is one published copy of the users; never modified.
type userSet struct {
	revision int64
	users    map[string]shardline.User
}

// NewUserWatcher returns a watcher over store's users; nil logger discards
// logs. Call Run to start it.
func NewUserWatcher(store *Store, logger *slog.Logger) *UserWatcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &UserWatcher{store: store, logger: logger.With("component", "user-watcher", "cluster", store.Cluster()), ready: make(chan struct{}), changed: make(chan struct{})}
}

// Lookup returns the user named name as the watcher last saw it. The
// caller must not modify the returned Tenants.
func (w *UserWatcher) Lookup(name string) (shardline.User, bool) {
	set := w.cur.Load()
	if set == nil {
		return shardline.User{}, false
	}
	u, ok := set.users[name]
	return u, ok
}

// Len returns how many users the watcher knows.
func (w *UserWatcher) Len() int {
	if set := w.cur.Load(); set != nil {
		return len(set.users)
	}
	return 0
}

// Revision returns the etcd revision of the users the watcher publishes,
// or 0 before the first load.
func (w *UserWatcher) Revision() int64 {
	if set := w.cur.Load(); set != nil {
		return set.revision
	}
	return 0
}

// Ready is closed once the users are first loaded.
func (w *UserWatcher) Ready() <-chan struct{} { return w.ready }

// WaitRevision blocks until the watcher has applied etcd revision rev (the
// ModRevision of a change to a user, or the header revision of a
// delete) or ctx ends.
func (w *UserWatcher) WaitRevision(ctx context.Context, rev int64) error {
	for {
		w.mu.Lock()
		have, changed := w.Revision(), w.changed
		w.mu.Unlock()
		if have >= rev {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for users at revision %d (have %d): %w", rev, have, ctx.Err())
		}
	}
}

func (w *UserWatcher) publish(set *userSet) {
	w.mu.Lock()
	w.cur.Store(set)
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	w.readyOnce.Do(func() { close(w.ready) })
	w.logger.Debug("users published", "revision", set.revision, "users", len(set.users))
}

// Run loads the users, publishes them, and follows etcd's watch from the
// next revision, publishing a new copy after each batch of changes (and
// the revision of progress notifications). When the watch fails or its
// history was compacted it loads them again. It returns nil when ctx is
// cancelled and owns no goroutine after that.
func (w *UserWatcher) Run(ctx context.Context) error {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			backoff = minBackoff
			continue
		}
		w.logger.Warn("user watch interrupted; reloading", "err", err, "retry_in", backoff)
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

// session loads, publishes and follows the watch until it fails; a nil
// error asks for an immediate reload.
func (w *UserWatcher) session(ctx context.Context) error {
	prefix := w.store.keys.userPrefix()
	resp, err := w.store.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("load users: %w", err)
	}
	set := &userSet{revision: resp.Header.Revision, users: make(map[string]shardline.User, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		u, err := w.store.decodeUser(kv)
		if err != nil {
			w.logger.Error("skipping a user record that does not decode", "key", string(kv.Key), "err", err)
			continue
		}
		set.users[u.Name] = u
	}
	w.publish(set)

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.store.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(set.revision+1), clientv3.WithProgressNotify())
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wresp, ok := <-ch:
			if !ok {
				return errors.New("etcdstore: user watch closed")
			}
			if wresp.CompactRevision != 0 {
				w.logger.Info("user watch fell behind compaction; reloading", "compact_revision", wresp.CompactRevision)
				return nil
			}
			if err := wresp.Err(); err != nil {
				return fmt.Errorf("user watch: %w", err)
			}
			next := &userSet{revision: max(set.revision, wresp.Header.Revision), users: set.users}
			if len(wresp.Events) > 0 {
				next.users = maps.Clone(set.users)
			}
			for _, ev := range wresp.Events {
				name, _ := trimmed(string(ev.Kv.Key), prefix)
				if ev.Type == mvccpb.DELETE {
					delete(next.users, name)
					continue
				}
				u, err := w.store.decodeUser(ev.Kv)
				if err != nil {
					w.logger.Error("dropping a user record that does not decode", "key", string(ev.Kv.Key), "err", err)
					delete(next.users, name)
					continue
				}
				next.users[u.Name] = u
			}
			set = next
			w.publish(set)
		}
	}
}
