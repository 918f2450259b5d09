package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// Defaults of EmbeddedConfig.
const (
	DefaultClientAddr   = "127.0.0.1:6479"
	DefaultPeerAddr     = "127.0.0.1:6478"
	DefaultStartTimeout = 30 * time.Second
)

// ErrDataInUse is wrapped by StartEmbedded's error when another process (or
// another server in this one) holds the etcd data in the directory.
var ErrDataInUse = errors.New("etcdstore: etcd data in use")

// EmbeddedConfig configures a single-member etcd running inside this
// process, as `shardline up` uses it.
type EmbeddedConfig struct {
	// Dir holds etcd's data. Starting again on the same Dir keeps the data.
	Dir string
	// ClientAddr is the host:port clients dial (default DefaultClientAddr).
	ClientAddr string
	// PeerAddr is the host:port of the raft peer listener (default
	// DefaultPeerAddr). Nothing else joins, but etcd needs one.
	PeerAddr string
	// StartTimeout bounds how long StartEmbedded waits for etcd to serve
	// (default DefaultStartTimeout).
	StartTimeout time.Duration
	// Logger receives etcd's warnings and errors; nil discards them.
	Logger *slog.Logger
	// NoFsync skips fsync. Only for tests: a crash loses data.
	NoFsync bool
}

func (c *EmbeddedConfig) setDefaults() {
	if c.ClientAddr == "" {
		c.ClientAddr = DefaultClientAddr
	}
	if c.PeerAddr == "" {
		c.PeerAddr = DefaultPeerAddr
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
}

// Validate checks the config after defaults are applied.
func (c *EmbeddedConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("etcdstore: embedded etcd needs a data dir")
	}
	for _, a := range []string{c.ClientAddr, c.PeerAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("embedded etcd address %q: %w", a, err)
		}
	}
	if c.ClientAddr == c.PeerAddr {
		return fmt.Errorf("etcdstore: embedded etcd client and peer address are both %s", c.ClientAddr)
	}
	return nil
}

// Embedded is an etcd server running in this process. Close stops it.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closeOnce sync.Once
	closing   atomic.Bool
}

// StartEmbedded starts a single-member etcd with its data in cfg.Dir and
// returns once it serves clients. An address already in use is an error
// naming it; data another server holds is an error wrapping ErrDataInUse,
// found before etcd would wait on its lock (which no context ends); a server that does not become ready within cfg.StartTimeout
// (or before ctx ends) is stopped and reported.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// embed would fail on a busy port too, but later and less plainly.
	for _, a := range []struct{ what, addr string }{{"client", cfg.ClientAddr}, {"peer", cfg.PeerAddr}} {
		if err := probePort(a.addr); err != nil {
			return nil, fmt.Errorf("embedded etcd %s address %s is not free (is another shardline or etcd running?): %w", a.what, a.addr, err)
		}
	}

	// etcd wants its data private to the user running it.
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data dir: %w", err)
	}

	if err := probeData(cfg.Dir); err != nil {
		return nil, err
	}

	ec := embed.NewConfig()
	ec.Name = "shardline"
	ec.Dir = cfg.Dir
	client := url.URL{Scheme: "http", Host: cfg.ClientAddr}
	peer := url.URL{Scheme: "http", Host: cfg.PeerAddr}
	ec.ListenClientUrls = []url.URL{client}
	ec.AdvertiseClientUrls = []url.URL{client}
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ListenMetricsUrls = nil
	ec.Logger = "zap"
	ec.LogLevel = "warn"
	emb := &Embedded{}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToSlog(cfg.Logger, zapcore.WarnLevel, emb.benign))
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.UnsafeNoFsync = cfg.NoFsync

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		emb.closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s failed while starting: %w", cfg.Dir, err)
	case <-timer.C:
		emb.closing.Store(true)
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcdstore: embedded etcd in %s not ready after %s", cfg.Dir, cfg.StartTimeout)
	case <-ctx.Done():
		emb.closing.Store(true)
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("start embedded etcd: %w", ctx.Err())
	}
	eps := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		eps = append(eps, "http://"+l.Addr().String())
	}
	emb.etcd, emb.endpoints = e, eps
	return emb, nil
}

// benignWarnings are what etcd warns about on every start of a one-member,
// loopback-only embedded server: nothing a user of `shardline up` can act on.
var benignWarnings = map[string]bool{
	"simple token is not cryptographically signed":                                         true,
	"Running http and grpc server on single port. This is not recommended for production.": true,
}

// benign reports whether an etcd log message says nothing worth a warning:
// a known start-up remark, or anything logged while the server is closing
// (etcd reports its own listeners closing as errors).
func (e *Embedded) benign(msg string) bool {
	return e.closing.Load() || benignWarnings[msg]
}

// probeData fails when another server holds the backend of the etcd data in
// dir: etcd's own lock of it (bbolt's flock) waits for ever, and blocks
// embed.StartEtcd with it.
func probeData(dir string) error {
	path := filepath.Join(dir, "member", "snap", "db")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded etcd data %s: %w", path, err)
	}
	defer f.Close() // drops the probe's lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: another etcd (or shardline up) runs on the data in %s; stop it first or use another directory", ErrDataInUse, dir)
		}
		return fmt.Errorf("embedded etcd data %s: %w", path, err)
	}
	return nil
}

func probePort(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// Endpoints returns the client URLs to dial.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Err delivers an error if the server fails after it started.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the server and waits until it has stopped. Later calls do
// nothing.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
	return nil
}
