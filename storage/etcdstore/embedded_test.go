package etcdstore_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestStartEmbeddedRefusesDataInUse starts a second etcd on the data of a
// running one (other ports): it must fail at once naming the directory,
// not wait on etcd's own lock of the data, which no context ends.
func TestStartEmbeddedRefusesDataInUse(t *testing.T) {
	dir := t.TempDir()
	etcdtest.StartEmbedded(t, dir)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		e, err := etcdstore.StartEmbedded(ctx, etcdstore.EmbeddedConfig{Dir: dir, ClientAddr: freeAddr(t), PeerAddr: freeAddr(t)})
		if err == nil {
			e.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, etcdstore.ErrDataInUse) {
			t.Fatalf("second StartEmbedded on %s = %v, want ErrDataInUse", dir, err)
		}
	case <-time.After(30 * time.Second): // a deadline, not a measurement
		cancel()
		t.Fatalf("second StartEmbedded on the data of a running etcd still blocked after 30 s (context cancelled now)")
	}
}
