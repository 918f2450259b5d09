package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/clusterdir"
	"github.com/shardline/shardline/storage/etcdstore"
)

// Defaults of `shardline router`: next to `shardline up`'s router (6432)
// and metrics (6490), so both run on one machine without flags.
const (
	defaultRouterListen  = "127.0.0.1:6433"
	defaultRouterMetrics = "127.0.0.1:6491"
	// defaultEtcdTimeout bounds reaching etcd at start.
	defaultEtcdTimeout = 10 * time.Second
	// placementHintAfter is how long the router waits for the first
	// placement before it says what it waits for.
	placementHintAfter = 5 * time.Second
)

// routerCommand runs only the router, as production does: against an
// existing etcd (a cluster's or `shardline up`'s embedded one), with no
// manager and no PostgreSQL of its own.
type routerCommand struct {
	Listen  string   // router (PostgreSQL protocol)
	Metrics string   // Prometheus metrics (HTTP)
	Pprof   bool     // also /debug/pprof on Metrics
	Etcd    []string // etcd client endpoints
	Cluster string   // cluster name in etcd (default "default", as up)
	// EtcdTimeout bounds dialing etcd (default defaultEtcdTimeout).
	EtcdTimeout time.Duration
	// BindingTokenFile holds the shards' binding token (a `shardline up`
	// cluster's is DIR/pg/binding.token); "" binds tenants with SET.
	BindingTokenFile string
	routerFlags

	Stdout io.Writer
	Logger *slog.Logger
	// OnReady, when set, is called once the router serves (tests use it).
	OnReady func(routerInfo)
}

// routerInfo is what a ready router tells its user.
type routerInfo struct {
	RouterDSN  string
	MetricsURL string
	// Placement is the map the router routes by, for in-process callers
	// that wait for a change to reach it.
	Placement *etcdstore.Watcher
}

func runRouter(ctx context.Context, env *cliEnv, args []string) error {
	c := &routerCommand{Stdout: env.Stdout}
	var etcd string
	fs := newFlagSet(env, "router")
	fs.StringVar(&c.Listen, "listen", defaultRouterListen, "router address (PostgreSQL protocol)")
	fs.StringVar(&c.Metrics, "metrics", defaultRouterMetrics, "Prometheus metrics address (HTTP /metrics)")
	fs.BoolVar(&c.Pprof, "pprof", false, pprofHelp)
	fs.StringVar(&etcd, "etcd", etcdstore.DefaultClientAddr, "comma-separated etcd client endpoints (the default is where 'shardline up' serves its embedded etcd)")
	fs.StringVar(&c.Cluster, "cluster", "default", "cluster name: the placement is under /shardline/NAME/ in etcd")
	fs.DurationVar(&c.EtcdTimeout, "etcd-timeout", defaultEtcdTimeout, "how long to try reaching etcd at start")
	fs.StringVar(&c.BindingTokenFile, "binding-token-file", "", "`file` holding the token the shards' shardline.enter() accepts (a 'shardline up' cluster's is DIR/pg/binding.token); without it tenants are bound with SET, which any client can forge")
	c.routerFlags.register(fs, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q; see 'shardline router -h'", fs.Arg(0))
	}
	if err := c.checkCounts(); err != nil {
		return err
	}
	c.Etcd = splitList(etcd)
	c.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return c.Run(ctx)
}

// check rejects bad settings before anything is dialed or bound: exit
// status 2 with what to change.
func (c *routerCommand) check() error {
	if len(c.Etcd) == 0 {
		return usageErr("--etcd: no endpoints; give the etcd client address(es), for example %s", etcdstore.DefaultClientAddr)
	}
	if err := shardline.ValidateShardID(c.Cluster); err != nil {
		return usageErr("--cluster %q: use 1 to 63 bytes of a-z, 0-9, '-' and '_'", c.Cluster)
	}
	if c.EtcdTimeout <= 0 {
		return usageErr("--etcd-timeout %v: want a positive duration", c.EtcdTimeout)
	}
	return c.routerFlags.validate()
}

// Run dials etcd, waits for the first placement, serves the router and
// its metrics until ctx ends, then stops everything it started within
// stopTimeout and returns nil. Bad settings are exit status 2; etcd out of
// reach or a port in use, 1.
func (c *routerCommand) Run(ctx context.Context) (err error) {
	log := orDiscard(c.Logger)
	if c.Cluster == "" {
		c.Cluster = "default"
	}
	if c.EtcdTimeout == 0 {
		c.EtcdTimeout = defaultEtcdTimeout
	}
	if err := c.check(); err != nil {
		return err
	}
	if c.BindingTokenFile != "" {
		if c.BindingToken, err = clusterdir.ReadSecret(c.BindingTokenFile, "binding token"); err != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("--binding-token-file: %v", err)}
		}
	}

	// Bind our own ports first: a port in use is reported at once.
	lns, err := listen(port{"router (--listen)", c.Listen}, port{"metrics (--metrics)", c.Metrics})
	if err != nil {
		return err
	}
	defer lns.Close()
	routerLn, metricsLn := lns[0], lns[1]
	if err := c.checkTrust(routerLn.Addr()); err != nil {
		return err
	}

	// Everything started is stopped in reverse order, even on a failed start.
	lc := newLifecycle(log)
	defer lc.stop()

	endpoints := strings.Join(c.Etcd, ",")
	log.Info("connecting to etcd", "endpoints", endpoints, "cluster", c.Cluster)
	dctx, cancelDial := context.WithTimeout(ctx, c.EtcdTimeout)
	cli, err := etcdstore.Dial(dctx, c.Etcd, log)
	cancelDial()
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while dialing
		}
		return &exitError{code: 1, msg: fmt.Sprintf("cannot reach etcd at %s within %v: %v; start the cluster ('shardline up') or pass its endpoints with --etcd",
			endpoints, c.EtcdTimeout, errors.Unwrap(err))}
	}
	lc.onStop(func(context.Context) { cli.Close() })
	store, err := etcdstore.NewStore(cli, c.Cluster)
	if err != nil {
		return err
	}

	// Owned goroutines: the watcher and the two servers. The first failure
	// stops the whole process.
	runCtx := lc.runContext(ctx)
	watcher := etcdstore.NewWatcher(store, log)
	lc.goRun("placement watcher", func() error { return watcher.Run(runCtx) })
	hint := time.NewTimer(placementHintAfter)
	defer hint.Stop()
	for waiting := true; waiting; {
		select {
		case <-watcher.Ready():
			waiting = false
		case <-hint.C:
			log.Warn("no placement in etcd yet; waiting for the cluster to be bootstrapped ('shardline up'), or check --cluster",
				"endpoints", endpoints, "prefix", store.Prefix())
		case err := <-lc.failed():
			return err
		case <-ctx.Done():
			return nil
		}
	}
	log.Info("placement loaded", "revision", watcher.Revision(), "shards", len(watcher.Current().Shards))
	users := etcdstore.NewUserWatcher(store, log)
	lc.goRun("user watcher", func() error { return users.Run(runCtx) })
	select {
	case <-users.Ready():
	case err := <-lc.failed():
		return err
	case <-ctx.Done():
		return nil
	}
	log.Info("users loaded", "users", users.Len())
	c.routerFlags.users = users

	reg := newRegistry()
	if _, err := c.startRouter(lc, routerLn, watcher, log, reg); err != nil {
		return err
	}
	warnPprofExposed(log, c.Pprof, metricsLn)
	lc.serveHTTP("metrics", newMetricsServer(reg, c.Pprof), metricsLn)

	info := routerInfo{
		RouterDSN:  fmt.Sprintf("postgres://%s@%s/%s?%s", appUserName, routerLn.Addr(), c.Database, c.sslParams()),
		MetricsURL: fmt.Sprintf("http://%s/metrics", metricsLn.Addr()),
		Placement:  watcher,
	}
	fmt.Fprintf(c.Stdout, "shardline router ready: router %s  metrics %s\n", info.RouterDSN, info.MetricsURL)
	if c.OnReady != nil {
		c.OnReady(info)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
		return nil
	case err := <-lc.failed():
		return err
	}
}
