// Package etcdtest starts a real etcd inside the test process.
package etcdtest

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/etcdstore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Start starts an embedded etcd with its data in t.TempDir() on free
// loopback ports and returns a client to it. Both are closed by t.Cleanup.
func Start(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, _ := StartEmbedded(t, t.TempDir())
	return cli
}

// StartEmbedded is Start with the data in dir, so a test can stop the
// server (Close) and start another on the same data. The server and client
// are also closed by t.Cleanup; closing the server twice is harmless.
func StartEmbedded(t testing.TB, dir string) (*clientv3.Client, *etcdstore.Embedded) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, ok := t.(*testing.F); ok {
		// F.Log may not be called while fuzzing, and etcd logs from its
		// own goroutines at any time.
		logger = slog.New(slog.DiscardHandler)
	}
	var e *etcdstore.Embedded
	var err error
	// A free port can be taken between probing and binding; try again.
	for range 5 {
		e, err = etcdstore.StartEmbedded(ctx, etcdstore.EmbeddedConfig{
			Dir:        dir,
			ClientAddr: freeAddr(t),
			PeerAddr:   freeAddr(t),
			Logger:     logger,
			NoFsync:    true,
		})
		if err == nil || !strings.Contains(err.Error(), "not free") {
			break
		}
	}
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	cli, err := etcdstore.Dial(ctx, e.Endpoints(), nil)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, e
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testWriter sends etcd's warnings to the test log, which shows them only
// for failed or verbose tests. Writes after the test ended are dropped.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	defer func() { _ = recover() }() // t.Log panics after the test completed
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
