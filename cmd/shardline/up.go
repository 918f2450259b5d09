package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/router"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/postgres"
)

// upCommand runs the embedded one-machine cluster: etcd, PostgreSQL shards
// with streaming replicas, the shard manager with its admin API, and the
// router, all in this process (PostgreSQL as child processes).
type upCommand struct {
	Dir      string
	Shards   int
	Replicas int
	Listen   string // router
	Admin    string // admin API
	Metrics  string // Prometheus metrics
	Etcd     string // embedded etcd client address
	EtcdPeer string
	Database string
	BasePort int
	// MaxConnections is every PostgreSQL server's max_connections; 0
	// keeps the cluster's default (300).
	MaxConnections int
	PoolSize       int
	Cluster        string

	Target        string        // router default shardline.target
	MaxLag        string        // router default shardline.max_lag
	ReplicaPoll   time.Duration // replica lag sampling interval
	NoWriteTokens bool
	NoIOUring     bool

	Stdout io.Writer
	Logger *slog.Logger
	// OnReady, when set, is called once everything serves (tests use it).
	OnReady func(upInfo)
}

// upInfo is what a ready cluster tells its user.
type upInfo struct {
	RouterDSN string
	AdminURL  string
}

// stopTimeout bounds the whole shutdown after SIGINT or SIGTERM.
const stopTimeout = 15 * time.Second

func runUp(ctx context.Context, env *cliEnv, args []string) error {
	c := &upCommand{Stdout: env.Stdout}
	fs := newFlagSet(env, "up")
	fs.StringVar(&c.Dir, "dir", "/var/tmp/shardline", "cluster directory (data of etcd and every PostgreSQL server); a later run on the same directory restarts the same cluster")
	fs.IntVar(&c.Shards, "shards", 2, "number of shards (first run only)")
	fs.IntVar(&c.Replicas, "replicas", 1, "streaming replicas per shard (first run only)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:6432", "router address (PostgreSQL protocol)")
	fs.StringVar(&c.Admin, "admin", "127.0.0.1:6480", "admin API address (HTTP)")
	fs.StringVar(&c.Metrics, "metrics", "127.0.0.1:6490", "Prometheus metrics address (HTTP /metrics)")
	fs.StringVar(&c.Etcd, "etcd", etcdstore.DefaultClientAddr, "embedded etcd client address")
	fs.StringVar(&c.EtcdPeer, "etcd-peer", etcdstore.DefaultPeerAddr, "embedded etcd peer address")
	fs.StringVar(&c.Database, "database", "app", "database name on every shard, and the one the router serves")
	fs.IntVar(&c.BasePort, "pg-port", postgres.DefaultBasePort, "first PostgreSQL port; members use consecutive ports (first run only)")
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "max_connections of every PostgreSQL server; 0 for 300 (first run only)")
	fs.IntVar(&c.PoolSize, "pool-size", 20, "router: most server connections per shard member")
	fs.StringVar(&c.Target, "target", "primary", "router: default shardline.target for sessions: primary, replica or auto")
	fs.StringVar(&c.MaxLag, "max-lag", "1s", "router: default shardline.max_lag (a staleness such as 500ms, or WAL bytes such as 16MB)")
	fs.DurationVar(&c.ReplicaPoll, "replica-poll", 250*time.Millisecond, "router: how often replica lag is sampled")
	fs.BoolVar(&c.NoWriteTokens, "no-write-tokens", false, "router: skip read-your-writes tokens after write transactions (only to measure their cost)")
	fs.BoolVar(&c.NoIOUring, "no-io-uring", false, "router: one system call per socket read and write (epoll) even where the kernel offers io_uring, which the router uses by default to batch them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q; see 'shardline up -h'", fs.Arg(0))
	}
	if c.Replicas < 0 || c.Replicas > postgres.MaxReplicas {
		return usageErr("--replicas %d out of range 0..%d", c.Replicas, postgres.MaxReplicas)
	}
	if c.Shards < 1 || c.Shards > postgres.MaxShards {
		return usageErr("--shards %d out of range 1..%d", c.Shards, postgres.MaxShards)
	}
	if c.MaxConnections != 0 && (c.MaxConnections < 20 || c.MaxConnections > 10000) {
		return usageErr("--max-connections %d out of range 20..10000 (0 for the default)", c.MaxConnections)
	}
	c.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return c.Run(ctx)
}

// Run starts everything, reports readiness, and serves until ctx ends; then
// it stops every component (PostgreSQL servers included) within
// stopTimeout and returns nil.
func (c *upCommand) Run(ctx context.Context) (err error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	binDir, err := postgres.FindBinDir()
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}

	// Bind our own ports first: a port in use is reported at once.
	routerLn, err := listen("router (--listen)", c.Listen)
	if err != nil {
		return err
	}
	defer routerLn.Close()
	adminLn, err := listen("admin API (--admin)", c.Admin)
	if err != nil {
		return err
	}
	defer adminLn.Close()
	metricsLn, err := listen("metrics (--metrics)", c.Metrics)
	if err != nil {
		return err
	}
	defer metricsLn.Close()

	// Everything started is stopped in reverse order, even on a failed start.
	var stops []func(context.Context)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i](sctx)
		}
		log.Info("stopped")
	}()

	log.Info("starting etcd", "dir", filepath.Join(dir, "etcd"), "addr", c.Etcd)
	etcd, err := etcdstore.StartEmbedded(ctx, etcdstore.EmbeddedConfig{
		Dir: filepath.Join(dir, "etcd"), ClientAddr: c.Etcd, PeerAddr: c.EtcdPeer, Logger: log})
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	stops = append(stops, func(context.Context) { etcd.Close() })
	cli, err := etcdstore.Dial(ctx, etcd.Endpoints(), log)
	if err != nil {
		return err
	}
	stops = append(stops, func(context.Context) { cli.Close() })

	reps := c.Replicas
	if reps == 0 {
		reps = postgres.NoReplicas
	}
	var conf map[string]string
	if c.MaxConnections > 0 {
		conf = map[string]string{"max_connections": strconv.Itoa(c.MaxConnections)}
	}
	log.Info("starting PostgreSQL shards", "shards", c.Shards, "replicas", c.Replicas, "bin", binDir)
	local, err := postgres.StartLocal(ctx, postgres.LocalConfig{
		Dir: dir, BinDir: binDir, Shards: c.Shards, Replicas: reps, Database: c.Database, BasePort: c.BasePort, Conf: conf, Logger: log})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	stops = append(stops, func(ctx context.Context) {
		if err := local.Stop(ctx); err != nil {
			log.Error("stop PostgreSQL", "err", err)
		}
	})

	store, err := etcdstore.NewStore(cli, c.Cluster)
	if err != nil {
		return err
	}
	if _, err := store.Bootstrap(ctx, local.Shards()); err != nil {
		return fmt.Errorf("bootstrap placement: %w", err)
	}

	// Owned goroutines: the watcher and the three servers. Each reports
	// its end on errc; the first failure stops the whole process.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	stops = append(stops, func(context.Context) { cancelRun(); wg.Wait() })
	goRun := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	watcher := etcdstore.NewWatcher(store, log)
	goRun("placement watcher", func() error { return watcher.Run(runCtx) })
	select {
	case <-watcher.Ready():
	case <-ctx.Done():
		return nil
	}

	reg := newRegistry()
	rt, err := router.New(router.Config{Placement: watcher, Database: c.Database, PoolSize: c.PoolSize,
		DefaultTarget: c.Target, DefaultMaxLag: c.MaxLag, ReplicaPollInterval: c.ReplicaPoll, NoWriteTokens: c.NoWriteTokens,
		NoIOUring: c.NoIOUring,
		Logger:    log.With("component", "router"), Registerer: reg})
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	goRun("router", func() error { return rt.Serve(routerLn) })
	stops = append(stops, func(context.Context) { rt.Close() })

	mgr, err := shardmgr.New(shardmgr.Config{Store: store, Schema: shardmgr.SchemaApplierFunc(postgres.ApplySchema), Router: rt, Logger: log})
	if err != nil {
		return err
	}
	var ready atomic.Bool
	handler, err := api.NewServer(api.Config{Manager: mgr, Logger: log, Ready: ready.Load})
	if err != nil {
		return err
	}
	adminSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	goRun("admin API", func() error { return serveHTTP(adminSrv, adminLn) })
	stops = append(stops, func(ctx context.Context) { _ = adminSrv.Shutdown(ctx) })

	metricsSrv := newMetricsServer(reg)
	goRun("metrics", func() error { return serveHTTP(metricsSrv, metricsLn) })
	stops = append(stops, func(ctx context.Context) { _ = metricsSrv.Shutdown(ctx) })

	info := upInfo{
		RouterDSN: fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", routerLn.Addr(), c.Database),
		AdminURL:  "http://" + adminLn.Addr().String(),
	}
	ready.Store(true)
	fmt.Fprintf(c.Stdout, "shardline ready: router %s  admin %s  metrics http://%s/metrics\n", info.RouterDSN, info.AdminURL, metricsLn.Addr())
	fmt.Fprintf(c.Stdout, "try: psql '%s' -c \"SET shardline.tenant = 'acme'\" -c 'SHOW shardline.shard'\n", info.RouterDSN)
	if c.OnReady != nil {
		c.OnReady(info)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
		ready.Store(false)
		return nil
	case err := <-errc:
		ready.Store(false)
		return err
	case err := <-etcd.Err():
		ready.Store(false)
		return fmt.Errorf("embedded etcd: %w", err)
	}
}

func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &exitError{code: 1, msg: fmt.Sprintf("cannot listen on %s for the %s: %v; free the port or choose another address", addr, what, err)}
	}
	return ln, nil
}

func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
