package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shardline/shardline"
)

// Bounds of the waits StartLocal and Stop do.
const (
	streamingTimeout = 60 * time.Second
	stopBudget       = 30 * time.Second
)

// Local is a cluster of local PostgreSQL servers made by StartLocal. Its
// methods are safe for concurrent use; member operations run one at a time.
type Local struct {
	dir      string // Dir/pg
	sockets  string // Dir/pg/run, absolute: the servers' Unix sockets; "" for TCP only
	run      *runner
	log      *slog.Logger
	man      *manifest
	members  []*member // in manifest order
	byName   map[string]*member
	database string
	guard    *guard // nil with LocalConfig.NoGuard

	mu      sync.Mutex
	lock    *dirLock
	stopped bool
}

// MemberInfo describes one server of a Local.
type MemberInfo struct {
	Name    string
	Shard   shardline.ShardID
	Role    string // "primary" or "replica"
	Port    int
	DSN     string
	DataDir string
	LogFile string
}

// StartLocal creates the cluster cfg describes in cfg.Dir, or, when
// cfg.Dir already holds one, starts that one again with the same data on
// the same ports: its manifest (Dir/pg/manifest.json) wins over cfg, and
// the differences are logged. Servers that an earlier run left running are
// stopped and started afresh. It returns once every server accepts
// connections and every replica streams from its primary.
//
// A port that is taken is an error wrapping ErrPortInUse; another live
// process running the same directory is ErrDirLocked. On error nothing
// StartLocal started is left running. The servers outlive ctx: the caller
// stops them with Stop.
func StartLocal(ctx context.Context, cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	binDir := cfg.BinDir
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, err
	}
	run, err := newRunner(binDir)
	if err != nil {
		return nil, err
	}
	pgDir := filepath.Join(cfg.Dir, "pg")
	if err := run.checkTraversable(pgDir); err != nil {
		return nil, err
	}
	if err := run.mkdir(pgDir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	// A umask may have made the new parents unreachable after all.
	if err := run.checkTraversable(pgDir); err != nil {
		return nil, err
	}
	lock, err := lockDir(pgDir)
	if err != nil {
		return nil, err
	}
	l := &Local{dir: pgDir, run: run, log: cfg.Logger.With("cluster", pgDir), lock: lock}
	l.sockets = socketDir(pgDir)
	if l.sockets == "" {
		l.log.Info("servers listen on TCP only: the socket path would pass the kernel's limit", "dir", pgDir, "limit", maxSocketPath)
	}
	if !cfg.NoGuard {
		if l.guard, err = prepareGuard(ctx, run, pgDir); err != nil {
			lock.release()
			return nil, err
		}
	} else {
		l.log.Warn("servers start without the shardline_guard library: any client can set its tenant binding (NoGuard)")
	}
	man, err := readManifest(l.manifestPath())
	if err == nil {
		if man == nil {
			err = l.create(ctx, &cfg)
		} else {
			err = l.restart(ctx, &cfg, man)
		}
	}
	if err != nil {
		l.abort(ctx)
		return nil, err
	}
	return l, nil
}

// mkdirs creates the directories the servers write to besides their data
// directories: the log directory and the socket directory.
func (l *Local) mkdirs() error {
	dirs := []string{filepath.Join(l.dir, "log")}
	if l.sockets != "" {
		dirs = append(dirs, l.sockets)
	}
	for _, d := range dirs {
		if err := l.run.mkdir(d, 0o755); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	return nil
}

// maxSocketPath is the longest Unix socket path the kernel takes (the size
// of sockaddr_un's sun_path less its terminating NUL).
const maxSocketPath = 107

// socketDir returns the socket directory of the cluster in pgDir, absolute
// (libpq reads a host that starts with a slash as a socket directory), or
// "" when a server's socket path (".s.PGSQL.PORT" in it) could be too long.
func socketDir(pgDir string) string {
	dir, err := filepath.Abs(filepath.Join(pgDir, "run"))
	if err != nil || len(dir)+len("/.s.PGSQL.65535") > maxSocketPath {
		return ""
	}
	return dir
}

func (l *Local) manifestPath() string { return filepath.Join(l.dir, "manifest.json") }

// load builds the members from man.
func (l *Local) load(man *manifest) {
	l.man = man
	l.database = man.Database
	l.members = nil
	l.byName = map[string]*member{}
	for _, s := range man.Shards {
		var primary *member
		for _, mm := range s.Members {
			m := &member{
				manifestMember: mm,
				shard:          s.ID,
				primary:        primary,
				dataDir:        filepath.Join(l.dir, mm.DataDir),
				logFile:        filepath.Join(l.dir, "log", mm.Name+".log"),
				socketDir:      l.sockets,
				run:            l.run,
				log:            l.log.With("shard", s.ID, "member", mm.Name),
			}
			if primary == nil {
				primary = m
			}
			l.members = append(l.members, m)
			l.byName[m.Name] = m
		}
	}
}

// create makes a new cluster.
func (l *Local) create(ctx context.Context, cfg *LocalConfig) error {
	l.load(newManifest(cfg))
	l.log.Info("creating cluster", "shards", cfg.Shards, "replicas", cfg.replicas(), "base_port", cfg.BasePort)
	// Data directories without a manifest are what a first run that failed
	// left behind.
	for _, m := range l.members {
		if _, err := os.Stat(m.dataDir); err != nil {
			continue
		}
		l.log.Warn("removing the leftover of an unfinished first run", "member", m.Name, "data_dir", m.dataDir)
		if pid := m.pid(); pid > 0 && !processGone(pid) {
			if err := m.kill(ctx, pid); err != nil {
				return err
			}
		}
		if err := os.RemoveAll(m.dataDir); err != nil {
			return fmt.Errorf("postgres: member %s: %w", m.Name, err)
		}
	}
	for _, m := range l.members {
		if err := checkPortFree(m.Port); err != nil {
			return fmt.Errorf("postgres: member %s: %w", m.Name, err)
		}
	}
	if err := l.mkdirs(); err != nil {
		return err
	}
	noSync := cfg.Conf["fsync"] == "off"
	err := l.eachShard(func(shard []*member) error {
		p := shard[0]
		if err := p.initdb(ctx, noSync); err != nil {
			return err
		}
		if err := p.configure(l.serverConf()); err != nil {
			return err
		}
		if err := p.start(ctx); err != nil {
			return err
		}
		if err := p.createDatabase(ctx, l.database); err != nil {
			return err
		}
		if err := p.ensureAppRole(ctx, l.database); err != nil {
			return err
		}
		if err := l.ensureGuard(ctx, p); err != nil {
			return err
		}
		for _, r := range shard[1:] {
			if err := r.basebackup(ctx, noSync); err != nil {
				return err
			}
			if err := r.configure(l.serverConf()); err != nil {
				return err
			}
			if err := r.start(ctx); err != nil {
				return err
			}
		}
		return p.waitStreaming(ctx, shard[1:], streamingTimeout)
	})
	if err != nil {
		return err
	}
	if err := l.man.write(l.manifestPath()); err != nil {
		return err
	}
	l.log.Info("cluster created", "members", len(l.members))
	return nil
}

// restart starts the cluster that man describes.
func (l *Local) restart(ctx context.Context, cfg *LocalConfig, man *manifest) error {
	l.load(man)
	l.logDifferences(cfg)
	for _, m := range l.members {
		if _, err := os.Stat(m.dataDir); err != nil {
			return fmt.Errorf("postgres: member %s: data directory: %w; to create the cluster anew, remove %s", m.Name, err, l.dir)
		}
	}
	// A server still running from a killed earlier run has the right data
	// and port, but was started by someone else with settings we did not
	// write: stop it and start it afresh.
	var stale bool
	for _, m := range l.members {
		up, err := m.running(ctx)
		if err != nil {
			return err
		}
		if up {
			l.log.Warn("stopping a server an earlier run left running", "member", m.Name, "pid", m.pid())
			stale = true
		}
	}
	if stale {
		if err := l.stopAll(ctx); err != nil {
			return err
		}
	}
	for _, m := range l.members {
		if err := checkPortFree(m.Port); err != nil {
			return fmt.Errorf("postgres: member %s: %w", m.Name, err)
		}
	}
	if err := l.mkdirs(); err != nil {
		return err
	}
	l.log.Info("restarting cluster", "members", len(l.members))
	return l.eachShard(func(shard []*member) error {
		for _, m := range shard {
			if err := m.configure(l.serverConf()); err != nil {
				return err
			}
			if err := m.start(ctx); err != nil {
				return err
			}
			// Clusters made before the role existed get it here.
			if m.isPrimary() {
				if err := m.ensureAppRole(ctx, l.database); err != nil {
					return err
				}
				if err := l.ensureGuard(ctx, m); err != nil {
					return err
				}
			}
		}
		return shard[0].waitStreaming(ctx, shard[1:], streamingTimeout)
	})
}

// serverConf is the members' postgresql.conf settings of the manifest, with
// those that load the guard.
func (l *Local) serverConf() map[string]string {
	if l.guard == nil {
		return l.man.Conf
	}
	return l.guard.settings(l.man.Conf)
}

// ensureGuard creates the binding functions on primary p, unless the
// cluster runs without the guard.
func (l *Local) ensureGuard(ctx context.Context, p *member) error {
	if l.guard == nil {
		return nil
	}
	return p.ensureGuard(ctx, l.database, l.guard)
}

// BindingToken is the token the router passes to shardline.enter() to bind
// a tenant, or "" when the servers run without the guard (NoGuard): the
// router then binds with SET, which any client can do too.
func (l *Local) BindingToken() string {
	if l.guard == nil {
		return ""
	}
	return l.guard.token
}

// logDifferences logs where cfg differs from the manifest that wins.
func (l *Local) logDifferences(cfg *LocalConfig) {
	var diffs []any
	if cfg.Shards != len(l.man.Shards) {
		diffs = append(diffs, slog.Group("shards", "config", cfg.Shards, "manifest", len(l.man.Shards)))
	}
	if cfg.replicas() != l.man.Replicas {
		diffs = append(diffs, slog.Group("replicas", "config", cfg.replicas(), "manifest", l.man.Replicas))
	}
	if cfg.BasePort != l.man.BasePort {
		diffs = append(diffs, slog.Group("base_port", "config", cfg.BasePort, "manifest", l.man.BasePort))
	}
	if cfg.Database != l.man.Database {
		diffs = append(diffs, slog.Group("database", "config", cfg.Database, "manifest", l.man.Database))
	}
	if !maps.Equal(cfg.Conf, l.man.Conf) && len(cfg.Conf)+len(l.man.Conf) > 0 {
		diffs = append(diffs, slog.Group("conf", "config", cfg.Conf, "manifest", l.man.Conf))
	}
	if len(diffs) > 0 {
		l.log.Warn("config differs from the existing cluster's manifest; the manifest wins", diffs...)
	}
}

// eachShard runs fn on every shard at once, each with its primary first,
// and joins their errors.
func (l *Local) eachShard(fn func(shard []*member) error) error {
	var shards [][]*member
	for _, m := range l.members {
		if m.isPrimary() {
			shards = append(shards, nil)
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], m)
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() { errs[i] = fn(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// abort stops whatever a failed StartLocal started and releases the
// directory.
func (l *Local) abort(ctx context.Context) {
	if l.man != nil {
		if err := l.stopAll(context.WithoutCancel(ctx)); err != nil {
			l.log.Error("stopping after a failed start", "err", err)
		}
	}
	l.lock.release()
}

// Shards returns the shards with ids "s1", "s2", ..., members named
// "s1-primary", "s1-replica1", ..., and DSNs of the form
// "host=DIR/pg/run,127.0.0.1 port=PORT user=postgres dbname=DATABASE sslmode=disable"
// (the Unix socket, then TCP), or
// postgres://postgres@127.0.0.1:PORT/DATABASE?sslmode=disable where the
// socket path would be too long. Epoch is 1, and ServerUser is AppRole.
func (l *Local) Shards() []shardline.Shard {
	var shards []shardline.Shard
	for _, m := range l.members {
		mm := shardline.Member{Name: m.Name, DSN: m.dsn(l.database)}
		if m.isPrimary() {
			shards = append(shards, shardline.Shard{ID: shardline.ShardID(m.shard), Primary: mm, Epoch: 1, ServerUser: AppRole})
			continue
		}
		s := &shards[len(shards)-1]
		s.Replicas = append(s.Replicas, mm)
	}
	return shards
}

// Members describes every server, in the order s1 primary, s1 replicas, s2
// primary, ...
func (l *Local) Members() []MemberInfo {
	infos := make([]MemberInfo, len(l.members))
	for i, m := range l.members {
		infos[i] = MemberInfo{
			Name: m.Name, Shard: shardline.ShardID(m.shard), Role: m.Role, Port: m.Port,
			DSN: m.dsn(l.database), DataDir: m.dataDir, LogFile: m.logFile,
		}
	}
	return infos
}

// PID returns the process id of member name's postmaster, or 0 when it is
// not running. The error wraps ErrUnknownMember.
func (l *Local) PID(name string) (int, error) {
	m, ok := l.byName[name]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownMember, name)
	}
	return m.pid(), nil
}

// Stop stops the replicas, then the primaries (pg_ctl stop -m fast, then
// immediate, then SIGKILL for a server that does not stop in time), and
// releases the directory. It returns once no server process is left. It
// finishes even when ctx is already canceled, as after a Ctrl-C, bounded by
// its own timeouts. Stop is idempotent.
func (l *Local) Stop(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil
	}
	l.stopped = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopBudget)
	defer cancel()
	start := time.Now()
	err := l.stopAll(ctx)
	l.lock.release()
	l.log.Info("cluster stopped", "took", time.Since(start).Round(time.Millisecond), "err", err)
	return err
}

// stopAll stops every running member, replicas first.
func (l *Local) stopAll(ctx context.Context) error {
	var errs []error
	for _, primaries := range []bool{false, true} {
		var wg sync.WaitGroup
		tierErrs := make([]error, len(l.members))
		for i, m := range l.members {
			if m.isPrimary() == primaries {
				wg.Go(func() { tierErrs[i] = m.stop(ctx, "fast", true) })
			}
		}
		wg.Wait()
		errs = append(errs, tierErrs...)
	}
	return errors.Join(errs...)
}

// StopMember stops member name in mode "fast" or "immediate", for drills
// that stop or crash a server. Stopping a stopped member does nothing. The
// error wraps ErrUnknownMember or ErrStopped.
func (l *Local) StopMember(ctx context.Context, name, mode string) error {
	if mode != "fast" && mode != "immediate" {
		return fmt.Errorf("postgres: stop member %s: mode %q, want fast or immediate", name, mode)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, err := l.member(name)
	if err != nil {
		return err
	}
	return m.stop(ctx, mode, false)
}

// StartMember starts member name again and waits until it accepts
// connections; a replica then catches up from its primary on its own.
// Starting a running member does nothing. The error wraps ErrUnknownMember,
// ErrStopped or ErrPortInUse.
func (l *Local) StartMember(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, err := l.member(name)
	if err != nil {
		return err
	}
	if up, err := m.running(ctx); err != nil || up {
		return err
	}
	if err := m.configure(l.serverConf()); err != nil {
		return err
	}
	return m.start(ctx)
}

// member returns the named member; l.mu is held.
func (l *Local) member(name string) (*member, error) {
	if l.stopped {
		return nil, ErrStopped
	}
	m, ok := l.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMember, name)
	}
	return m, nil
}
