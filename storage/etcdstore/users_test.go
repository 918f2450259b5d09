package etcdstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
)

const testVerifier = "SCRAM-SHA-256$4096:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

func TestUsersAddGetListRemove(t *testing.T) {
	s := newStore(t, etcdtest.Start(t))
	ctx := t.Context()
	acme := shardline.User{Name: "acme_app", Kind: shardline.UserApp, Tenants: []shardline.TenantID{"acme"}, Verifier: testVerifier}
	got, err := s.AddUser(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	if got.Created.IsZero() || got.ModRevision == 0 {
		t.Fatalf("AddUser = %+v: no creation time or revision", got)
	}
	if _, err := s.AddUser(ctx, acme); !errors.Is(err, shardline.ErrUserExists) {
		t.Fatalf("second AddUser = %v, want ErrUserExists", err)
	}
	if _, err := s.AddUser(ctx, shardline.User{Name: "ops", Kind: shardline.UserAdmin, Verifier: testVerifier}); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]shardline.User{
		"bad name":      {Name: "1x", Kind: shardline.UserApp, Verifier: testVerifier},
		"bad kind":      {Name: "x", Kind: "root", Verifier: testVerifier},
		"bound admin":   {Name: "x", Kind: shardline.UserAdmin, Tenants: []shardline.TenantID{"acme"}, Verifier: testVerifier},
		"twice":         {Name: "x", Kind: shardline.UserApp, Tenants: []shardline.TenantID{"a", "a"}, Verifier: testVerifier},
		"no verifier":   {Name: "x", Kind: shardline.UserApp},
		"bad tenant id": {Name: "x", Kind: shardline.UserApp, Tenants: []shardline.TenantID{"a b"}, Verifier: testVerifier},
	} {
		_, err := s.AddUser(ctx, bad)
		if !errors.Is(err, shardline.ErrInvalidUser) && !errors.Is(err, shardline.ErrInvalidTenant) {
			t.Errorf("%s: AddUser = %v, want ErrInvalidUser or ErrInvalidTenant", name, err)
		}
	}
	u, err := s.GetUser(ctx, "acme_app")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Tenants, acme.Tenants) || u.Kind != shardline.UserApp || u.Verifier != testVerifier {
		t.Fatalf("GetUser = %+v", u)
	}
	list, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "acme_app" || list[1].Name != "ops" {
		t.Fatalf("ListUsers = %+v", list)
	}
	changed, err := s.SetUserVerifier(ctx, "acme_app", testVerifier+"x")
	if err != nil {
		t.Fatal(err)
	}
	if changed.Verifier != testVerifier+"x" || changed.ModRevision <= u.ModRevision || !slices.Equal(changed.Tenants, acme.Tenants) {
		t.Fatalf("SetUserVerifier = %+v", changed)
	}
	if _, err := s.SetUserVerifier(ctx, "ghost", testVerifier); !errors.Is(err, shardline.ErrUserNotFound) {
		t.Fatalf("SetUserVerifier(ghost) = %v, want ErrUserNotFound", err)
	}
	if _, err := s.RemoveUser(ctx, "acme_app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveUser(ctx, "acme_app"); !errors.Is(err, shardline.ErrUserNotFound) {
		t.Fatalf("second RemoveUser = %v, want ErrUserNotFound", err)
	}
	if _, err := s.GetUser(ctx, "acme_app"); !errors.Is(err, shardline.ErrUserNotFound) {
		t.Fatalf("GetUser after remove = %v, want ErrUserNotFound", err)
	}
}

// The watcher sees users added, changed and removed after it started, and
// ones that were there before.
func TestUserWatcherFollows(t *testing.T) {
	s := newStore(t, etcdtest.Start(t))
	ctx := t.Context()
	if _, err := s.AddUser(ctx, shardline.User{Name: "before", Kind: shardline.UserApp, Verifier: testVerifier}); err != nil {
		t.Fatal(err)
	}
	w := etcdstore.NewUserWatcher(s, nil)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	<-w.Ready()
	if _, ok := w.Lookup("before"); !ok {
		t.Fatal("Lookup misses a user added before Run")
	}
	wait := func(rev int64) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := w.WaitRevision(wctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.AddUser(ctx, shardline.User{Name: "after", Kind: shardline.UserApp, Tenants: []shardline.TenantID{"acme"}, Verifier: testVerifier})
	if err != nil {
		t.Fatal(err)
	}
	wait(u.ModRevision)
	if got, ok := w.Lookup("after"); !ok || !slices.Equal(got.Tenants, []shardline.TenantID{"acme"}) {
		t.Fatalf("Lookup(after) = %+v, %v", got, ok)
	}
	u, err = s.SetUserVerifier(ctx, "after", testVerifier+"2")
	if err != nil {
		t.Fatal(err)
	}
	wait(u.ModRevision)
	if got, _ := w.Lookup("after"); got.Verifier != testVerifier+"2" {
		t.Fatalf("Lookup after passwd: verifier %q", got.Verifier)
	}
	rev, err := s.RemoveUser(ctx, "before")
	if err != nil {
		t.Fatal(err)
	}
	wait(rev)
	if _, ok := w.Lookup("before"); ok {
		t.Fatal("Lookup finds a removed user")
	}
	if w.Len() != 1 {
		t.Fatalf("Len = %d, want 1", w.Len())
	}
}
