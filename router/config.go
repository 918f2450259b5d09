package router

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardline/shardline"
)

// PlacementSource gives the router the placement map it routes by. The
// router reads it on every transaction, so Current must be cheap and must
// return an immutable map (an etcd watcher that swaps a pointer).
type PlacementSource interface {
	Current() *shardline.Placement
}

// Config configures a Router.
type Config struct {
	// Placement is where tenants live. Required.
	Placement PlacementSource
	// Database is the one database name clients may ask for ("app").
	Database string
	// PoolSize is the most server connections per shard member (default
	// 20), split between the event loops (Loops).
	PoolSize int
	// Loops is how many event loops, each on a thread of its own, serve
	// the sessions (default 1; see loops.go). Each loop has its own pools,
	// with PoolSize/Loops server connections per member.
	Loops int
	// WaitTimeout bounds waiting for a free server connection and for a
	// connection to be made (default 10 s).
	WaitTimeout time.Duration
	// IdleCheckAfter is how long a pooled server connection may sit idle
	// before it is checked (one non-blocking read) for having been closed by
	// the server when it is taken again (default 1 s).
	IdleCheckAfter time.Duration
	// StatementCacheSize bounds the parse cache for statements without a
	// tenant (default 10000).
	StatementCacheSize int
	// ReplicaPollInterval is how often replica lag is sampled (default
	// 250 ms).
	ReplicaPollInterval time.Duration
	// DefaultTarget is shardline.target for new sessions: "primary"
	// (default), "replica" or "auto".
	DefaultTarget string
	// DefaultMaxLag is shardline.max_lag for new sessions (default 1 s).
	DefaultMaxLag string
	// NoWriteTokens turns off read-your-writes tokens: no extra round trip
	// after write transactions, and replicas may miss a session's writes.
	// For measuring the tokens' cost only.
	NoWriteTokens bool
	// NoIOUring makes the event loop issue one system call per socket read
	// and write instead of batching them through io_uring (which it does
	// by default where the kernel offers it: Linux 6.15 or later).
	NoIOUring bool
	// NoSchedBatch keeps the event loop's thread in the default
	// scheduling policy instead of SCHED_BATCH, which it takes by default
	// so that a server's reply does not preempt the task that sent it only
	// for the loop to serve that one reply and sleep again
	// (internal/netloop/sched.go). For comparison.
	NoSchedBatch bool
	// AllowSuperuser lets server connections log in as a superuser or a
	// BYPASSRLS role, which row-level security does not bind. By default
	// the router refuses such connections (28000). For development only.
	AllowSuperuser bool
	// TLS, when set, lets clients encrypt their sessions (SSLRequest, or
	// PostgreSQL 17's direct TLS with ALPN "postgresql"): TLS 1.2 or
	// later, Go's default cipher suites. A GetCertificate that returns a
	// reloaded certificate (CertFiles) changes it for new sessions.
	TLS *tls.Config
	// TLSRequired refuses unencrypted sessions (28000) except on Unix
	// sockets; cancel requests are served either way. Needs TLS.
	TLSRequired bool
	// Auth is how clients authenticate: AuthSCRAM (the default) or
	// AuthTrust, which Serve allows on a loopback listener only.
	Auth AuthMethod
	// Users are the clients' credentials and the tenants they are bound
	// to. Required with AuthSCRAM; with AuthTrust, users it knows keep
	// their tenants.
	Users UserSource
	// BindingToken is passed to shardline.enter() to bind a tenant on a
	// server connection, on shards that load the shardline_guard library
	// (enter.go). "" binds with SET shardline.tenant, which on shards
	// without the library any client can do too.
	BindingToken string
	Logger       *slog.Logger
	// Registerer receives the router's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

// maxLoops bounds Config.Loops: a thread each.
const maxLoops = 256

func (c *Config) setDefaults() {
	if c.Database == "" {
		c.Database = "app"
	}
	if c.PoolSize == 0 {
		c.PoolSize = 20
	}
	if c.Loops == 0 {
		c.Loops = 1
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = 10 * time.Second
	}
	if c.IdleCheckAfter == 0 {
		c.IdleCheckAfter = time.Second
	}
	if c.StatementCacheSize == 0 {
		c.StatementCacheSize = 10000
	}
	if c.ReplicaPollInterval == 0 {
		c.ReplicaPollInterval = 250 * time.Millisecond
	}
	if c.DefaultTarget == "" {
		c.DefaultTarget = "primary"
	}
	if c.DefaultMaxLag == "" {
		c.DefaultMaxLag = "1s"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Auth == "" {
		c.Auth = AuthSCRAM
	}
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	c.setDefaults()
	if c.Placement == nil {
		return errors.New("router: Config.Placement is required")
	}
	if c.PoolSize < 1 || c.PoolSize > 10000 {
		return fmt.Errorf("router: PoolSize %d out of range 1..10000", c.PoolSize)
	}
	if c.Loops < 1 || c.Loops > maxLoops {
		return fmt.Errorf("router: Loops %d out of range 1..%d", c.Loops, maxLoops)
	}
	if c.Loops > c.PoolSize {
		return fmt.Errorf("router: Loops %d is more than PoolSize %d: every loop needs a server connection per member of its own", c.Loops, c.PoolSize)
	}
	if _, err := parseTarget(c.DefaultTarget); err != nil {
		return fmt.Errorf("router: DefaultTarget: %w", err)
	}
	if _, err := parseLagBound(c.DefaultMaxLag); err != nil {
		return fmt.Errorf("router: DefaultMaxLag: %w", err)
	}
	if c.ReplicaPollInterval < 10*time.Millisecond {
		return fmt.Errorf("router: ReplicaPollInterval %s is below 10ms", c.ReplicaPollInterval)
	}
	if c.WaitTimeout < 0 {
		return fmt.Errorf("router: WaitTimeout %s is negative", c.WaitTimeout)
	}
	if err := validateTLS(c); err != nil {
		return err
	}
	if _, err := ParseAuthMethod(string(c.Auth)); err != nil {
		return fmt.Errorf("router: Auth: %w", err)
	}
	if c.Auth == AuthSCRAM && c.Users == nil {
		return errors.New("router: Config.Users is required with scram-sha-256 authentication (Auth: AuthTrust asks for no password, on loopback only)")
	}
	return nil
}
