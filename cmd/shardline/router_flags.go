package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/router"
)

// routerFlags are the router's settings that `shardline up` and
// `shardline router` share, with the same flags.
type routerFlags struct {
	Database string
	PoolSize int
	Loops    int

	Target        string        // default shardline.target
	MaxLag        string        // default shardline.max_lag
	ReplicaPoll   time.Duration // replica lag sampling interval
	NoWriteTokens bool
	NoIOUring     bool
	NoSchedBatch  bool
	// AllowSuperuser lets server connections use a superuser or BYPASSRLS
	// role, which row-level security does not bind (development only).
	AllowSuperuser bool
	// BindingToken is passed to shardline.enter() to bind tenants: up
	// takes it from its shards, `shardline router` from
	// --binding-token-file. "" binds with SET (shards without the guard).
	BindingToken string
	// Auth is --auth: scram-sha-256 (default) or trust (loopback only).
	Auth string
	// users are the router's users: the command sets them (an etcd
	// watcher) before startRouter.
	users router.UserSource
	tlsFlags
}

// register adds the flags to fs. help prefixes every help text but that of
// --database, which is not only the router's.
func (f *routerFlags) register(fs *flag.FlagSet, help string) {
	fs.StringVar(&f.Database, "database", "app", "database name on every shard, and the one the router serves")
	fs.IntVar(&f.PoolSize, "pool-size", 20, help+"most server connections per shard member")
	fs.IntVar(&f.Loops, "loops", 1, help+"event loops, a thread each, that serve the sessions; each has its own pools, with --pool-size divided between them (more than 1 only for a router with cores of its own: see the README's Performance section)")
	fs.StringVar(&f.Target, "target", "primary", help+"default shardline.target for sessions: primary, replica or auto")
	fs.StringVar(&f.MaxLag, "max-lag", "1s", help+"default shardline.max_lag (a staleness such as 500ms, or WAL bytes such as 16MB)")
	fs.DurationVar(&f.ReplicaPoll, "replica-poll", 250*time.Millisecond, help+"how often replica lag is sampled")
	fs.BoolVar(&f.NoWriteTokens, "no-write-tokens", false, help+"skip read-your-writes tokens after write transactions (only to measure their cost)")
	fs.BoolVar(&f.NoIOUring, "no-io-uring", false, help+"one system call per socket read and write (epoll) even where the kernel offers io_uring, which the router uses by default to batch them")
	fs.BoolVar(&f.AllowSuperuser, "allow-superuser", false, help+"let server connections use a superuser or BYPASSRLS role, which row-level security does not bind; for development only (by default the router refuses them: give each shard a server_user)")
	fs.StringVar(&f.Auth, "auth", string(router.AuthSCRAM), help+"client authentication: scram-sha-256 (passwords of 'shardline user add' users) or trust (no password; only with a loopback --listen, for development)")
	fs.StringVar(&f.TLSCert, "tls-cert", "", help+"`file` (PEM) of the TLS certificate chain clients are served (with --tls-key); reloaded on SIGHUP")
	fs.StringVar(&f.TLSKey, "tls-key", "", help+"`file` (PEM) of the TLS certificate's private key")
	fs.BoolVar(&f.TLSRequired, "tls-required", false, help+"refuse unencrypted client sessions (FATAL 28000); cancel requests are served either way")
	fs.BoolVar(&f.NoSchedBatch, "no-sched-batch", false, help+"keep the event loop's thread in the default scheduling policy instead of SCHED_BATCH (only to measure the difference)")
}

// checkCounts rejects --pool-size or --loops below 1, which router.Config would
// read as its default: exit status 2.
func (f *routerFlags) checkCounts() error {
	if f.PoolSize < 1 {
		return usageErr("--pool-size %d: want at least 1", f.PoolSize)
	}
	if f.Loops < 1 {
		return usageErr("--loops %d: want at least 1", f.Loops)
	}
	return nil
}

// validate rejects router settings the router would refuse, before
// anything is started: exit status 2 naming the flag.
func (f *routerFlags) validate() error {
	if err := f.checkTLS(); err != nil {
		return err
	}
	cfg := f.routerConfig(noPlacement{}, slog.New(slog.DiscardHandler), nil)
	cfg.TLSRequired = cfg.TLSRequired && cfg.TLS != nil // checkTLS checked it (up --tls makes the pair later)
	if cfg.Users == nil {
		cfg.Users = noUsers{}
	}
	if err := cfg.Validate(); err != nil {
		// Name the flags, not router.Config's fields.
		flags := strings.NewReplacer("PoolSize", "--pool-size", "Loops", "--loops", "DefaultTarget", "--target",
			"DefaultMaxLag", "--max-lag", "ReplicaPollInterval", "--replica-poll", "Auth", "--auth")
		return usageErr("%s", flags.Replace(strings.TrimPrefix(err.Error(), "router: ")))
	}
	return nil
}

// noPlacement stands in for the placement while the settings are checked.
type noPlacement struct{}

func (noPlacement) Current() *shardline.Placement { return nil }

// noUsers stands in for the users while the settings are checked.
type noUsers struct{}

func (noUsers) Lookup(string) (shardline.User, bool) { return shardline.User{}, false }

// checkTrust refuses --auth trust on a listener that is not loopback:
// exit status 2, before anything is started.
func (f *routerFlags) checkTrust(listen net.Addr) error {
	if f.Auth != string(router.AuthTrust) {
		return nil
	}
	if tcp, ok := listen.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		return nil
	}
	return usageErr("--auth trust on %s: only a loopback --listen may skip passwords; listen on 127.0.0.1, or keep --auth scram-sha-256", listen)
}

// routerConfig is the router's configuration from f.
func (f *routerFlags) routerConfig(placement router.PlacementSource, log *slog.Logger, reg prometheus.Registerer) router.Config {
	return router.Config{Placement: placement, Database: f.Database, PoolSize: f.PoolSize, Loops: f.Loops,
		DefaultTarget: f.Target, DefaultMaxLag: f.MaxLag, ReplicaPollInterval: f.ReplicaPoll, NoWriteTokens: f.NoWriteTokens,
		NoIOUring: f.NoIOUring, NoSchedBatch: f.NoSchedBatch, AllowSuperuser: f.AllowSuperuser, BindingToken: f.BindingToken,
		Auth: router.AuthMethod(f.Auth), Users: f.users, TLS: f.tlsConfig(), TLSRequired: f.TLSRequired,
		Logger: log.With("component", "router"), Registerer: reg}
}

// startRouter creates the router from f, routing by placement, and serves
// it on ln as a goroutine of lc, whose stop closes it. Settings the router
// refuses are exit status 2.
func (f *routerFlags) startRouter(lc *lifecycle, ln net.Listener, placement router.PlacementSource, log *slog.Logger, reg prometheus.Registerer) (*router.Router, error) {
	if err := f.loadTLS(); err != nil { // up --tls made the pair after validate
		return nil, err
	}
	f.reloadOnHUP(lc, log)
	rt, err := router.New(f.routerConfig(placement, log, reg))
	if err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	lc.goRun("router", func() error { return rt.Serve(ln) })
	lc.onStop(func(context.Context) { rt.Close() })
	return rt, nil
}
