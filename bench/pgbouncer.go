package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of PgBouncerConfig.
const (
	DefaultPoolSize      = 20
	DefaultMaxClientConn = 2000
	// pgbouncerReadyTimeout bounds the wait for PgBouncer to listen.
	pgbouncerReadyTimeout = 15 * time.Second
	// stopGrace is how long a stopped child gets before SIGKILL.
	stopGrace = 10 * time.Second
)

// pgbouncerPaths are tried, in order, when PgBouncerConfig.Path is empty:
// PATH first, then where Debian installs it (/usr/sbin is not on every
// user's PATH).
var pgbouncerPaths = []string{"pgbouncer", "/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"}

// PgBouncerConfig describes a PgBouncer that the bench runs for itself: one
// database, transaction pooling, trust authentication, listening on
// 127.0.0.1 only, Unix sockets off.
type PgBouncerConfig struct {
	// Path is the pgbouncer binary; empty means FindPgBouncer("").
	Path string
	// Dir receives pgbouncer.ini, userlist.txt and pgbouncer.log. It is
	// created if missing. Required.
	Dir string
	// Server is the DSN of the PostgreSQL server to pool. Its first host
	// (a Unix socket directory or a TCP host), port, database, user and
	// password are used. Required.
	Server string
	// Database is the name clients connect to; empty means the server's
	// database name.
	Database string
	// Also are further servers pooled by the same process, each under a
	// database name of its own: PgBouncer routing by database name, the
	// control for the router's routing by tenant.
	Also []PgBouncerDatabase
	// ListenPort is the port on 127.0.0.1; 0 picks a free one.
	ListenPort int
	// PoolSize is default_pool_size: server connections per database and
	// user (default DefaultPoolSize).
	PoolSize int
	// MaxClientConn is max_client_conn (default DefaultMaxClientConn).
	MaxClientConn int
	// MaxPreparedStatements is max_prepared_statements, with which
	// PgBouncer 1.21 and later keep named prepared statements working in
	// transaction mode. 0 means 200 where the version supports it and off
	// elsewhere; negative means off.
	MaxPreparedStatements int
	// TLSCertFile and TLSKeyFile, when set, are a PEM pair PgBouncer
	// serves clients with, and clients must use TLS (client_tls_sslmode =
	// require; the endpoints carry sslmode=require). The files are copied
	// into Dir for PgBouncer's OS user.
	TLSCertFile, TLSKeyFile string
	// OSUser is the user PgBouncer runs as when this process is root,
	// since PgBouncer refuses to run as root; empty means "postgres".
	OSUser string
	// Logger receives start and stop lines; nil discards them.
	Logger *slog.Logger
}

// PgBouncerDatabase is a server PgBouncer pools under a database name.
type PgBouncerDatabase struct {
	// Name is the database name clients connect to. Required.
	Name string
	// Server is the DSN of the server, read as PgBouncerConfig.Server is.
	Server string
}

// pgbouncerServer is what the generated configuration needs of the server.
type pgbouncerServer struct {
	host, dbname, user, password string
	port                         uint16
}

// parseServer reads the server's address and login from a DSN.
func parseServer(dsn string) (pgbouncerServer, error) {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return pgbouncerServer{}, fmt.Errorf("server DSN: %w", err)
	}
	s := pgbouncerServer{host: pc.Host, port: pc.Port, dbname: pc.Database, user: pc.User, password: pc.Password}
	if s.dbname == "" || s.user == "" {
		return pgbouncerServer{}, fmt.Errorf("server DSN: needs a database and a user")
	}
	return s, nil
}

// connValue quotes v for a [databases] connection string: single quotes
// around it, each quote in it doubled. authValue quotes an auth file field
// likewise with double quotes.
func connValue(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
func authValue(v string) string { return `"` + strings.ReplaceAll(v, `"`, `""`) + `"` }

// withDefaults fills the zero fields that have defaults.
func (c PgBouncerConfig) withDefaults() PgBouncerConfig {
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.MaxClientConn == 0 {
		c.MaxClientConn = DefaultMaxClientConn
	}
	if c.OSUser == "" {
		c.OSUser = "postgres"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c after defaults. Every error wraps ErrInvalidConfig.
func (c PgBouncerConfig) Validate() error {
	c = c.withDefaults()
	if c.Dir == "" {
		return fmt.Errorf("%w: pgbouncer: Dir is required", ErrInvalidConfig)
	}
	if _, err := c.databases(); err != nil {
		return fmt.Errorf("%w: pgbouncer: %w", ErrInvalidConfig, err)
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		return fmt.Errorf("%w: pgbouncer: listen port %d", ErrInvalidConfig, c.ListenPort)
	}
	if c.PoolSize < 1 {
		return fmt.Errorf("%w: pgbouncer: pool size %d: want at least 1", ErrInvalidConfig, c.PoolSize)
	}
	if c.MaxClientConn < 1 {
		return fmt.Errorf("%w: pgbouncer: max_client_conn %d: want at least 1", ErrInvalidConfig, c.MaxClientConn)
	}
	return nil
}

// Render returns the pgbouncer.ini and the auth file (userlist.txt) for c
// listening on port, with the auth file at authFile. c must be valid.
func (c PgBouncerConfig) Render(port int, authFile string) (ini, users string, err error) {
	c = c.withDefaults()
	dbs, err := c.databases()
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	b.WriteString("; Written by shardline bench for one run; deleted afterwards.\n")
	b.WriteString("[databases]\n")
	for _, d := range dbs {
		s := d.server
		fmt.Fprintf(&b, "%s = host=%s port=%d dbname=%s user=%s", d.name, connValue(s.host), s.port, connValue(s.dbname), connValue(s.user))
		if s.password != "" {
			fmt.Fprintf(&b, " password=%s", connValue(s.password))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n[pgbouncer]\n")
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	set("listen_addr", "127.0.0.1")
	set("listen_port", strconv.Itoa(port))
	set("unix_socket_dir", "")
	set("auth_type", "trust")
	set("auth_file", authFile)
	set("pool_mode", "transaction")
	set("default_pool_size", strconv.Itoa(c.PoolSize))
	set("min_pool_size", "0")
	set("reserve_pool_size", "0")
	set("max_client_conn", strconv.Itoa(c.MaxClientConn))
	set("max_db_connections", "0")
	// pgbench and drivers send these; PgBouncer would refuse the client.
	set("ignore_startup_parameters", "extra_float_digits,options")
	// Logging every connection would cost the churn workload.
	set("log_connections", "0")
	set("log_disconnections", "0")
	set("log_stats", "0")
	set("stats_period", "60")
	if c.MaxPreparedStatements > 0 {
		set("max_prepared_statements", strconv.Itoa(c.MaxPreparedStatements))
	}
	if c.TLSCertFile != "" {
		set("client_tls_sslmode", "require")
		set("client_tls_cert_file", c.TLSCertFile)
		set("client_tls_key_file", c.TLSKeyFile)
	}
	// No admin console users, no pidfile: the bench owns the process.
	users = authValue(dbs[0].server.user) + " " + authValue(dbs[0].server.password) + "\n"
	return b.String(), users, nil
}

// pgbouncerDB is a [databases] entry: the name clients use and its server.
type pgbouncerDB struct {
	name   string
	server pgbouncerServer
}

// databases returns c's [databases] entries, the first being Server's,
// and checks them: plain names, each used once, and one login for all (the
// auth file holds one user).
func (c PgBouncerConfig) databases() ([]pgbouncerDB, error) {
	first, err := parseServer(c.Server)
	if err != nil {
		return nil, err
	}
	name := c.Database
	if name == "" {
		name = first.dbname
	}
	dbs := []pgbouncerDB{{name, first}}
	for i, a := range c.Also {
		s, err := parseServer(a.Server)
		if err != nil {
			return nil, fmt.Errorf("database %d (%s): %w", i+2, a.Name, err)
		}
		if s.user != first.user || s.password != first.password {
			return nil, fmt.Errorf("database %d (%s): user %q differs from the first server's %q; use one login", i+2, a.Name, s.user, first.user)
		}
		dbs = append(dbs, pgbouncerDB{a.Name, s})
	}
	seen := map[string]bool{}
	for _, d := range dbs {
		if d.name == "" || strings.ContainsAny(d.name, " =\t\n'\"[]") {
			return nil, fmt.Errorf("database name %q needs quoting or is empty; use a plain name", d.name)
		}
		if seen[d.name] {
			return nil, fmt.Errorf("database name %q given twice", d.name)
		}
		seen[d.name] = true
	}
	return dbs, nil
}

// FindPgBouncer resolves the pgbouncer binary: path when given, else
// pgbouncer on PATH, then /usr/sbin and /usr/local. The error wraps
// ErrPgBouncerNotFound.
func FindPgBouncer(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrPgBouncerNotFound, err)
		}
		return p, nil
	}
	for _, p := range pgbouncerPaths {
		if found, err := exec.LookPath(p); err == nil {
			return found, nil
		}
	}
	return "", fmt.Errorf("%w: not on PATH nor in /usr/sbin; install it (Debian: apt-get install pgbouncer) or pass its path", ErrPgBouncerNotFound)
}

// PgBouncerVersion returns the first line of `pgbouncer --version`, for
// example "PgBouncer 1.18.0".
func PgBouncerVersion(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// parsePgBouncerVersion reads major and minor from "PgBouncer 1.18.0".
func parsePgBouncerVersion(line string) (major, minor int, ok bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "PgBouncer" {
		return 0, 0, false
	}
	parts := strings.SplitN(f[1], ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// PgBouncer is a running PgBouncer child process. Close stops it.
type PgBouncer struct {
	cfg     PgBouncerConfig
	dbs     []pgbouncerDB // cfg's [databases] entries
	path    string
	port    int
	version string
	proc    *child
}

// StartPgBouncer writes c's configuration into c.Dir, starts PgBouncer in
// the foreground (as c.OSUser when this process is root) and waits until it
// accepts TCP connections. The error wraps ErrNotReady (with the end of its
// log) when it exits or does not listen within 15 s.
func StartPgBouncer(ctx context.Context, c PgBouncerConfig) (*PgBouncer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	dbs, _ := c.databases() // Validate checked them
	path, err := FindPgBouncer(c.Path)
	if err != nil {
		return nil, err
	}
	version, err := PgBouncerVersion(ctx, path)
	if err != nil {
		return nil, err
	}
	if c.MaxPreparedStatements == 0 {
		c.MaxPreparedStatements = -1
		if major, minor, ok := parsePgBouncerVersion(version); ok && (major > 1 || minor >= 21) {
			c.MaxPreparedStatements = 200
		}
	}
	cred, err := credentialFor(c.OSUser)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	if err := checkTraversable(c.Dir, cred); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	// The pool is as large as max_client_conn plus server connections in
	// file descriptors; Go restores the soft limit it found at start in
	// its children, which may be as low as 1024.
	if err := raiseChildFileLimit(uint64(c.MaxClientConn + c.PoolSize + 64)); err != nil {
		c.Logger.Warn("pgbouncer: cannot raise the open file limit", "err", err)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := c.ListenPort
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		b, err := startPgBouncerOn(ctx, c, path, cred, port)
		if err == nil {
			b.version, b.dbs = version, dbs
			return b, nil
		}
		// Another process may take a free port between our probe and
		// PgBouncer's bind: try another one.
		if c.ListenPort != 0 || attempt == attempts || !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
	}
}

func startPgBouncerOn(ctx context.Context, c PgBouncerConfig, path string, cred *syscall.Credential, port int) (*PgBouncer, error) {
	iniPath := filepath.Join(c.Dir, "pgbouncer.ini")
	authPath := filepath.Join(c.Dir, "userlist.txt")
	if c.TLSCertFile != "" {
		// PgBouncer's OS user reads its own copies.
		for _, f := range []*string{&c.TLSCertFile, &c.TLSKeyFile} {
			data, err := os.ReadFile(*f)
			if err != nil {
				return nil, fmt.Errorf("pgbouncer: TLS: %w", err)
			}
			*f = filepath.Join(c.Dir, "client-"+filepath.Base(*f))
			if err := writeOwned(*f, data, cred); err != nil {
				return nil, fmt.Errorf("pgbouncer: %w", err)
			}
		}
	}
	ini, users, err := c.Render(port, authPath)
	if err != nil {
		return nil, fmt.Errorf("%w: pgbouncer: %w", ErrInvalidConfig, err)
	}
	for _, f := range []struct{ path, data string }{{iniPath, ini}, {authPath, users}} {
		if err := writeOwned(f.path, []byte(f.data), cred); err != nil {
			return nil, fmt.Errorf("pgbouncer: %w", err)
		}
	}
	if err := chownTo(c.Dir, cred); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	logPath := filepath.Join(c.Dir, "pgbouncer.log")
	proc, err := startChild(childConfig{
		name: "pgbouncer", path: path, args: []string{iniPath}, dir: c.Dir,
		cred: cred, logPath: logPath, logger: c.Logger,
	})
	if err != nil {
		return nil, err
	}
	b := &PgBouncer{cfg: c, path: path, port: port, proc: proc}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// PgBouncer logs "listening on 127.0.0.1:PORT" once bound: the port
	// answering is not enough, someone else may have taken it.
	if err := proc.waitTCP(ctx, addr, "listening on "+addr, pgbouncerReadyTimeout); err != nil {
		_ = proc.stop(syscall.SIGTERM, stopGrace)
		return nil, err
	}
	c.Logger.Info("pgbouncer started", "pid", proc.pid(), "addr", addr, "pool_size", c.PoolSize)
	return b, nil
}

// Endpoint returns the endpoint clients use to reach the first server
// through b: the server's user and the configured database name on b's port.
func (b *PgBouncer) Endpoint() Endpoint { return b.Endpoints()[0] }

// Endpoints returns an endpoint per database b pools, the first server's
// first, then Also's in order.
func (b *PgBouncer) Endpoints() []Endpoint {
	eps := make([]Endpoint, len(b.dbs))
	for i, d := range b.dbs {
		ssl := "disable"
		if b.cfg.TLSCertFile != "" {
			ssl = "require"
		}
		u := "postgres://" + urlUser(d.server.user, d.server.password) + "@" + net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) + "/" + d.name + "?sslmode=" + ssl
		eps[i] = Endpoint{DSN: u}
	}
	return eps
}

// Databases returns the database names clients use, in Endpoints' order.
func (b *PgBouncer) Databases() []string {
	names := make([]string, len(b.dbs))
	for i, d := range b.dbs {
		names[i] = d.name
	}
	return names
}

// PID is the PgBouncer process id.
func (b *PgBouncer) PID() int { return b.proc.pid() }

// Version is PgBouncer's version line.
func (b *PgBouncer) Version() string { return b.version }

// PreparedStatements reports whether b keeps named prepared statements
// working in transaction mode (max_prepared_statements is set).
func (b *PgBouncer) PreparedStatements() bool { return b.cfg.MaxPreparedStatements > 0 }

// PoolSize is default_pool_size.
func (b *PgBouncer) PoolSize() int { return b.cfg.PoolSize }

// Err returns nil while PgBouncer runs and an error wrapping ErrProcessGone
// (with the end of its log) once it has exited.
func (b *PgBouncer) Err() error { return b.proc.exited() }

// Close stops PgBouncer: SIGTERM (immediate shutdown), SIGKILL after 10 s.
// It is safe to call more than once.
func (b *PgBouncer) Close() error {
	err := b.proc.stop(syscall.SIGTERM, stopGrace)
	b.cfg.Logger.Info("pgbouncer stopped", "pid", b.proc.pid())
	return err
}

// credentialFor returns the credential to run a child as osUser when this
// process is root, and nil otherwise.
func credentialFor(osUser string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return nil, fmt.Errorf("running as root, and PgBouncer refuses to run as root, but there is no OS user %s to run it as (%v); create one (useradd --system postgres) or run as another user", osUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OS user %s: uid %q gid %q", osUser, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// checkTraversable checks that the user of cred can reach dir through each
// of its parents (cred nil: nothing to check).
func checkTraversable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		if ok {
			var search bool
			switch {
			case st.Uid == cred.Uid:
				search = perm&0o100 != 0
			case st.Gid == cred.Gid:
				search = perm&0o010 != 0
			default:
				search = perm&0o001 != 0
			}
			if !search {
				return fmt.Errorf("%s (mode %v) does not let uid %d through to %s; use a directory under /tmp, or chmod o+x %s", p, perm, cred.Uid, dir, p)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// writeOwned writes a file readable only by its owner, the user of cred
// (or this process's user when cred is nil).
func writeOwned(path string, data []byte, cred *syscall.Credential) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return chownTo(path, cred)
}

func chownTo(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}

// raiseChildFileLimit makes children inherit a soft RLIMIT_NOFILE of at
// least want (up to the hard limit). Go raises its own soft limit at start
// and restores the original in children unless the program sets the limit
// itself, which this does; the change is process-wide.
func raiseChildFileLimit(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = max(lim.Cur, min(want, lim.Max))
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
