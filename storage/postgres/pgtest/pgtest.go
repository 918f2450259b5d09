// Package pgtest starts local PostgreSQL clusters for integration tests:
// real servers, tuned for speed over durability, on free ports.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/postgres"
)

// Ports are probed below Linux's ephemeral range (32768 and up), so that
// the local ends of client connections do not take them.
const (
	portLow  = 16000
	portHigh = 32000
	attempts = 5
)

// testConf trades durability for speed; a test cluster is thrown away.
var testConf = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
}

// Start starts a cluster of shards shards with replicas replicas each (0
// means none) in dir, with fsync, synchronous_commit and full_page_writes
// off, on a range of free ports. Packages tested in parallel may pick the
// same ports at the same moment; Start then tries another range. The
// caller stops the cluster with Stop.
func Start(ctx context.Context, dir string, shards, replicas int) (*postgres.Local, error) {
	return start(ctx, dir, shards, replicas, nil)
}

func start(ctx context.Context, dir string, shards, replicas int, logger *slog.Logger) (*postgres.Local, error) {
	if replicas == 0 {
		replicas = postgres.NoReplicas
	}
	members := shards * (1 + max(replicas, 0))
	// An existing cluster keeps its ports: one attempt, and never remove it.
	_, statErr := os.Stat(filepath.Join(dir, "pg", "manifest.json"))
	fresh := errors.Is(statErr, fs.ErrNotExist)
	var err error
	for range attempts {
		var base int
		base, err = freePortRange(members)
		if err != nil {
			return nil, err
		}
		var l *postgres.Local
		l, err = postgres.StartLocal(ctx, postgres.LocalConfig{
			Dir:      dir,
			Shards:   shards,
			Replicas: replicas,
			BasePort: base,
			Conf:     maps.Clone(testConf),
			Logger:   logger,
		})
		if err == nil {
			return l, nil
		}
		if !fresh || !errors.Is(err, postgres.ErrPortInUse) {
			return nil, err
		}
		// A race for the ports: start over in a fresh directory, since
		// the manifest would keep the taken ports.
		if rmErr := os.RemoveAll(filepath.Join(dir, "pg")); rmErr != nil {
			return nil, errors.Join(err, rmErr)
		}
	}
	return nil, fmt.Errorf("pgtest: no free ports after %d attempts: %w", attempts, err)
}

// ForTest starts a cluster for t in a fresh temporary directory, fails t if
// it cannot, and stops the cluster when t ends. It needs PostgreSQL's
// server binaries (see postgres.FindBinDir) and skips nothing.
func ForTest(t testing.TB, shards, replicas int) *postgres.Local {
	t.Helper()
	dir := Dir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	l, err := start(ctx, dir, shards, replicas, Logger(t))
	if err != nil {
		t.Fatalf("pgtest: start cluster: %v", err)
	}
	t.Logf("pgtest: %d shard(s) x %d replica(s) up in %v", shards, replicas, time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := l.Stop(context.Background()); err != nil {
			t.Errorf("pgtest: stop cluster: %v", err)
		}
	})
	return l
}

// Dir returns a fresh temporary directory, removed when t ends, that the
// postgres OS user can reach: t.TempDir makes it and its parent mode 0700,
// which keeps PostgreSQL out when tests run as root.
func Dir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != filepath.Clean(os.TempDir()) && p != filepath.Dir(p); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	return dir
}

// Logger returns a logger that writes to t's log, shown for failed tests
// and with -v. Use it only while t runs (including its Cleanup functions).
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// freePortRange returns the first of n consecutive ports that can all be
// bound on 127.0.0.1 now.
func freePortRange(n int) (int, error) {
	for range 200 {
		base := portLow + rand.IntN(portHigh-portLow-n)
		if rangeFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("pgtest: no %d consecutive free ports in %d..%d", n, portLow, portHigh)
}

func rangeFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
