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
	"sync/atomic"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/clusterdir"
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
	// AdminTokenFile holds the admin API's token; "" for DIR/admin.token,
	// generated on the first run.
	AdminTokenFile string
	Metrics        string // Prometheus metrics
	Pprof          bool   // also /debug/pprof on Metrics
	Etcd           string // embedded etcd client address
	EtcdPeer       string
	BasePort       int
	// MaxConnections is every PostgreSQL server's max_connections; 0
	// keeps the cluster's default (300).
	MaxConnections int
	Cluster        string
	// NoGuard starts the shards without the shardline_guard library
	// (no C compiler or server headers): any client can forge its tenant.
	NoGuard bool
	// routerFlags' Database is also the one created on every shard.
	routerFlags

	Stdout io.Writer
	Logger *slog.Logger
	// OnReady, when set, is called once everything serves (tests use it).
	OnReady func(upInfo)
}

// upInfo is what a ready cluster tells its user.
type upInfo struct {
	RouterDSN string
	AdminURL  string
	// AdminTokenFile holds the admin API's token.
	AdminTokenFile string
	// AppPasswordFile holds the password of the application user, which
	// RouterDSN logs in as.
	AppPasswordFile string
	// Users is the router's copy of the users, for in-process callers
	// that wait for a change to reach it.
	Users *etcdstore.UserWatcher
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
	fs.StringVar(&c.Admin, "admin", "127.0.0.1:6480", "admin API address (HTTP); on an address that is not loopback every request must send the admin token")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "`file` holding the admin API's token (default DIR/admin.token, generated on the first run); "+
		"requests must send it as 'Authorization: Bearer TOKEN' when --admin is not a loopback address, and may on loopback")
	fs.StringVar(&c.Metrics, "metrics", "127.0.0.1:6490", "Prometheus metrics address (HTTP /metrics)")
	fs.BoolVar(&c.Pprof, "pprof", false, pprofHelp)
	fs.StringVar(&c.Etcd, "etcd", etcdstore.DefaultClientAddr, "embedded etcd client address")
	fs.StringVar(&c.EtcdPeer, "etcd-peer", etcdstore.DefaultPeerAddr, "embedded etcd peer address")
	fs.IntVar(&c.BasePort, "pg-port", postgres.DefaultBasePort, "first PostgreSQL port; members use consecutive ports (first run only)")
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "max_connections of every PostgreSQL server; 0 for 300 (first run only)")
	fs.BoolVar(&c.NoGuard, "no-guard", false, "start the shards without the shardline_guard library, for a machine without a C compiler or the PostgreSQL server headers; any client can then forge its tenant binding (development only)")
	c.routerFlags.register(fs, "router: ")
	fs.BoolVar(&c.SelfSigned, "tls", false, "router: TLS with a self-signed certificate made in DIR/tls (server.crt, server.key) unless --tls-cert is given; clients verify it with sslmode=verify-full sslrootcert=DIR/tls/server.crt")
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
	if err := c.checkCounts(); err != nil {
		return err
	}
	if c.MaxConnections != 0 && (c.MaxConnections < 20 || c.MaxConnections > 10000) {
		return usageErr("--max-connections %d out of range 20..10000 (0 for the default)", c.MaxConnections)
	}
	c.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return c.Run(ctx)
}

// Run starts everything, reports readiness, and serves until ctx ends; then
// it stops every component (PostgreSQL servers included) within
// stopTimeout and returns nil, also when ctx ends while it starts. A
// directory another process runs a cluster in is exit status 1, found
// before anything is started.
func (c *upCommand) Run(ctx context.Context) (err error) {
	log := orDiscard(c.Logger)
	// Stopped while starting (SIGINT, SIGTERM): what failed because of it
	// is no error, and everything started is stopped by then.
	defer func() {
		if err != nil && ctx.Err() != nil {
			log.Info("stopped while starting", "reason", context.Cause(ctx), "step", err)
			err = nil
		}
	}()
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	// Bad router settings are refused before a cluster is started for them.
	if err := c.routerFlags.validate(); err != nil {
		return err
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	// The directory first: a second up on a running cluster's directory
	// says so at once, whatever ports it was given. The lock is released
	// last, once everything below has stopped.
	lock, err := clusterdir.Acquire(dir)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	defer lock.Release()
	binDir, err := postgres.FindBinDir()
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}

	token, tokenFile, err := c.adminToken(dir)
	if err != nil {
		return err
	}
	if c.SelfSigned && c.TLSCert == "" {
		cert, key, made, err := ensureSelfSigned(dir)
		if err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		c.TLSCert, c.TLSKey = cert, key
		if made {
			log.Info("made a self-signed TLS certificate for the router", "cert", cert, "key", key)
		}
	} else {
		c.SelfSigned = false // the operator's certificate: clients verify it against its CA
	}

	// Bind our own ports next: a port in use is reported at once.
	lns, err := listen(port{"router (--listen)", c.Listen}, port{"admin API (--admin)", c.Admin}, port{"metrics (--metrics)", c.Metrics})
	if err != nil {
		return err
	}
	defer lns.Close()
	routerLn, adminLn, metricsLn := lns[0], lns[1], lns[2]
	if err := c.checkTrust(routerLn.Addr()); err != nil {
		return err
	}
	requireToken, err := requireAdminToken(adminLn.Addr(), token)
	if err != nil {
		return err
	}
	log.Info("admin API token", "file", tokenFile, "required", requireToken)
	if err := lock.SetAddrs(routerLn.Addr().String(), "http://"+adminLn.Addr().String()); err != nil {
		return err
	}

	// Everything started is stopped in reverse order, even on a failed start.
	lc := newLifecycle(log)
	defer lc.stop()

	log.Info("starting etcd", "dir", filepath.Join(dir, "etcd"), "addr", c.Etcd)
	etcd, err := etcdstore.StartEmbedded(ctx, etcdstore.EmbeddedConfig{
		Dir: filepath.Join(dir, "etcd"), ClientAddr: c.Etcd, PeerAddr: c.EtcdPeer, Logger: log})
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	lc.onStop(func(context.Context) { etcd.Close() })
	cli, err := etcdstore.Dial(ctx, etcd.Endpoints(), log)
	if err != nil {
		return err
	}
	lc.onStop(func(context.Context) { cli.Close() })

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
		Dir: dir, BinDir: binDir, Shards: c.Shards, Replicas: reps, Database: c.Database, BasePort: c.BasePort, Conf: conf, NoGuard: c.NoGuard, Logger: log})
	if errors.Is(err, postgres.ErrNoGuard) {
		return &exitError{code: 1, msg: fmt.Sprintf("start PostgreSQL: %v; or pass --no-guard to run without it (any client can then forge its tenant)", err)}
	}
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	c.BindingToken = local.BindingToken()
	lc.onStop(func(ctx context.Context) {
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

	// Owned goroutines: the watcher and the three servers. The first
	// failure stops the whole process.
	runCtx := lc.runContext(ctx)
	watcher := etcdstore.NewWatcher(store, log)
	lc.goRun("placement watcher", func() error { return watcher.Run(runCtx) })
	select {
	case <-watcher.Ready():
	case <-ctx.Done():
		return nil
	}
	appPassword, appPasswordFile, err := ensureAppUser(ctx, store, dir, log)
	if err != nil {
		return err
	}
	users := etcdstore.NewUserWatcher(store, log)
	lc.goRun("user watcher", func() error { return users.Run(runCtx) })
	select {
	case <-users.Ready():
	case <-ctx.Done():
		return nil
	}
	c.routerFlags.users = users

	reg := newRegistry()
	rt, err := c.startRouter(lc, routerLn, watcher, log, reg)
	if err != nil {
		return err
	}

	mgr, err := shardmgr.New(shardmgr.Config{Store: store, Schema: postgres.SchemaAdmin{}, Data: tenantRows, Router: rt, Logger: log})
	if err != nil {
		return err
	}
	info := upInfo{
		RouterDSN:       fmt.Sprintf("postgres://%s:%s@%s/%s?%s", appUserName, appPassword, routerLn.Addr(), c.Database, c.sslParams()),
		AdminURL:        "http://" + adminLn.Addr().String(),
		AdminTokenFile:  tokenFile,
		AppPasswordFile: appPasswordFile,
		Users:           users,
	}
	var ready atomic.Bool
	handler, err := api.NewServer(api.Config{Manager: mgr, Logger: log, Ready: ready.Load, RouterDSN: info.RouterDSN,
		Token: token, RequireToken: requireToken, Users: store})
	if err != nil {
		return err
	}
	lc.serveHTTP("admin API", &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}, adminLn)
	warnPprofExposed(log, c.Pprof, metricsLn)
	lc.serveHTTP("metrics", newMetricsServer(reg, c.Pprof), metricsLn)

	ready.Store(true)
	fmt.Fprintf(c.Stdout, "shardline ready: router %s  admin %s  metrics http://%s/metrics\n", info.RouterDSN, info.AdminURL, metricsLn.Addr())
	needed, send := "not required on loopback", "--admin-token-file "+tokenFile
	if requireToken {
		needed = "required: the admin API is not on loopback"
	}
	if c.AdminTokenFile == "" {
		send = "--dir " + dir
	}
	fmt.Fprintf(c.Stdout, "admin token: %s (%s; the CLI sends it with %s)\n", tokenFile, needed, send)
	fmt.Fprintf(c.Stdout, "app user: %s, password in %s ('shardline user add' makes more, bound to tenants with --tenant)\n", appUserName, appPasswordFile)
	if c.SelfSigned {
		fmt.Fprintf(c.Stdout, "TLS: self-signed certificate %s (127.0.0.1, localhost and this host's name); clients verify it with sslmode=verify-full sslrootcert=%s\n", c.TLSCert, c.TLSCert)
	}
	fmt.Fprintf(c.Stdout, "try: psql '%s' -c \"SET shardline.tenant = 'acme'\" -c 'SHOW shardline.shard'\n", info.RouterDSN)
	if c.OnReady != nil {
		c.OnReady(info)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
		ready.Store(false)
		return nil
	case err := <-lc.failed():
		ready.Store(false)
		return err
	case err := <-etcd.Err():
		ready.Store(false)
		return fmt.Errorf("embedded etcd: %w", err)
	}
}

// adminToken returns the admin API's token and the file it is in:
// --admin-token-file's, else the cluster directory's, generated on the
// first run. A file that cannot be read or written is exit status 1.
func (c *upCommand) adminToken(dir string) (token, file string, err error) {
	if c.AdminTokenFile != "" {
		file, err := filepath.Abs(c.AdminTokenFile)
		if err != nil {
			return "", "", err
		}
		token, err := readTokenFile(file)
		if err != nil {
			return "", "", &exitError{code: 1, msg: fmt.Sprintf("--admin-token-file: %v", err)}
		}
		return token, file, nil
	}
	token, err = clusterToken(dir)
	if err != nil {
		return "", "", &exitError{code: 1, msg: fmt.Sprintf("%v (the cluster directory keeps the admin token in %s)", err, adminTokenName)}
	}
	return token, filepath.Join(dir, adminTokenName), nil
}

// tenantRows finds a tenant's rows in the tenant tables (those with a
// tenant_id column) of a shard primary.
var tenantRows = shardmgr.TenantDataFunc(func(ctx context.Context, dsn string, t shardline.TenantID) (string, error) {
	return postgres.TenantTable(ctx, dsn, postgres.DefaultTenantColumn, string(t))
})

// port is an address of ours to bind and what it serves, for the error.
type port struct{ what, addr string }

// listeners are bound ports; Close closes them in reverse order.
type listeners []net.Listener

func (ls listeners) Close() {
	for i := len(ls) - 1; i >= 0; i-- {
		ls[i].Close()
	}
}

// listen binds the ports in order. A port in use is exit status 1 with what
// to do; the ports bound before it are closed again.
func listen(ports ...port) (listeners, error) {
	var ls listeners
	for _, p := range ports {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			ls.Close()
			return nil, &exitError{code: 1, msg: fmt.Sprintf("cannot listen on %s for the %s: %v; free the port or choose another address", p.addr, p.what, err)}
		}
		ls = append(ls, ln)
	}
	return ls, nil
}
