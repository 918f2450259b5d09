package router

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// env is the cluster every integration test of this package shares: two
// real PostgreSQL shards, a real embedded etcd holding the placement, and a
// router that follows it through a watcher.
var env struct {
	pg      *postgres.Local
	store   *etcdstore.Store
	watcher *etcdstore.Watcher
	router  *Router
	addr    string
}

const testPoolSize = 4

// testNoIOUring runs the package's routers in the event loop's epoll mode
// (SHARDLINE_TEST_EPOLL=1; .ci/run runs the package both ways).
var testNoIOUring = os.Getenv("SHARDLINE_TEST_EPOLL") != ""

// testLoops is the package's routers' Config.Loops: SHARDLINE_TEST_LOOPS=2
// runs every session test with the sessions taking turns between two event
// loops, each with its own pools (0: the default, one loop).
var testLoops, _ = strconv.Atoi(os.Getenv("SHARDLINE_TEST_LOOPS"))

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "shardline-router-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	env.pg, err = pgtest.Start(ctx, dir+"/pg", 2, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start postgres:", err)
		return 1
	}
	defer env.pg.Stop(context.Background())

	etcd, err := etcdstore.StartEmbedded(ctx, etcdstore.EmbeddedConfig{
		Dir: dir + "/etcd", ClientAddr: freeAddr(), PeerAddr: freeAddr(), NoFsync: true, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start etcd:", err)
		return 1
	}
	defer etcd.Close()
	cli, err := etcdstore.Dial(ctx, etcd.Endpoints(), logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial etcd:", err)
		return 1
	}
	defer cli.Close()
	env.store, err = etcdstore.NewStore(cli, "test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := env.store.Bootstrap(ctx, env.pg.Shards()); err != nil {
		fmt.Fprintln(os.Stderr, "bootstrap:", err)
		return 1
	}
	env.watcher = etcdstore.NewWatcher(env.store, logger)
	wctx, wcancel := context.WithCancel(context.Background())
	werr := make(chan error, 1)
	go func() { werr <- env.watcher.Run(wctx) }()
	defer func() { wcancel(); <-werr }()
	select {
	case <-env.watcher.Ready():
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "watcher not ready")
		return 1
	}

	env.router, err = New(Config{Placement: env.watcher, Auth: AuthTrust, PoolSize: testPoolSize, WaitTimeout: 5 * time.Second,
		IdleCheckAfter:      time.Nanosecond, // check on every reuse, so the tests exercise it
		ReplicaPollInterval: 50 * time.Millisecond,
		NoIOUring:           testNoIOUring,
		Loops:               testLoops,
		BindingToken:        env.pg.BindingToken(),
		Logger:              logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.addr = ln.Addr().String()
	serr := make(chan error, 1)
	go func() { serr <- env.router.Serve(ln) }()
	defer func() { env.router.Close(); <-serr }()
	return m.Run()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// routerDSN is a connection string to the test router; opts are extra
// query parameters such as "options=-c%20shardline.tenant%3Dacme".
func routerDSN(opts string) string {
	host, port, _ := net.SplitHostPort(env.addr)
	dsn := fmt.Sprintf("postgres://app@%s:%s/app?sslmode=disable", host, port)
	if opts != "" {
		dsn += "&" + opts
	}
	return dsn
}

func needCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL and etcd (run without -short)")
	}
}

func connect(t *testing.T, opts string) *pgx.Conn {
	t.Helper()
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, routerDSN(opts))
	if err != nil {
		t.Fatalf("connect to router: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// direct connects straight to a shard primary.
func direct(t *testing.T, shard shardline.ShardID) *pgx.Conn {
	t.Helper()
	for _, s := range env.pg.Shards() {
		if s.ID == shard {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, s.Primary.DSN)
			if err != nil {
				t.Fatalf("connect to %s: %v", shard, err)
			}
			t.Cleanup(func() { c.Close(context.Background()) })
			return c
		}
	}
	t.Fatalf("no shard %s", shard)
	return nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// applySchema runs ddl on every shard primary.
func applySchema(t *testing.T, ddl string) {
	t.Helper()
	needCluster(t)
	for _, s := range env.pg.Shards() {
		if err := postgres.ApplySchema(testCtx(t), s.Primary.DSN, ddl); err != nil {
			t.Fatalf("schema on %s: %v", s.ID, err)
		}
	}
}

func shardOf(t *testing.T, tenant string) shardline.ShardID {
	t.Helper()
	needCluster(t)
	return env.watcher.Current().Locate(shardline.TenantID(tenant)).Shard
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func hintOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Hint
	}
	return ""
}
