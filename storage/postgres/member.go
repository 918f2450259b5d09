package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Timeouts of pg_ctl, in seconds.
const (
	startTimeout = "60"
	stopTimeout  = "10"
)

// exitTimeout bounds the wait for a postmaster to exit once pg_ctl stop
// has returned.
const exitTimeout = 5 * time.Second

// settingsFile is the file in each data directory that holds the settings
// the cluster assigns; postgresql.conf includes it. It is rewritten from
// the manifest on every start.
const settingsFile = "shardline.conf"

// member is one PostgreSQL server of a local cluster.
type member struct {
	manifestMember
	shard   string
	primary *member // nil for a primary
	dataDir string
	logFile string
	// socketDir holds m's Unix socket; "" when m listens on TCP only.
	socketDir string
	run       *runner
	log       *slog.Logger
}

func (m *member) isPrimary() bool { return m.primary == nil }

// dsn returns a pgx connection string for database db on m. With a Unix
// socket it is libpq's multi-host form: the socket first (a client on this
// machine, such as the router of `shardline up`, skips loopback TCP, which
// costs the kernel more per message), then 127.0.0.1 for a client that
// cannot reach the socket.
func (m *member) dsn(db string) string {
	if m.socketDir == "" {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", m.Port, db)
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable",
		dsnValue(m.socketDir+",127.0.0.1"), m.Port, dsnValue(db))
}

// workDir is where the binaries run: a directory the postgres user can
// enter (the process's own may be /root).
func (m *member) workDir() string { return filepath.Dir(m.dataDir) }

// initdb creates a primary's data directory.
func (m *member) initdb(ctx context.Context, noSync bool) error {
	args := []string{"-D", m.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if noSync {
		args = append(args, "--no-sync")
	}
	m.log.Info("initdb")
	if _, err := m.run.run(ctx, m.workDir(), "initdb", args...); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	conf := filepath.Join(m.dataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings assigned by shardline, regenerated on every start.\ninclude '%s'\n", settingsFile)
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	return nil
}

// hba is the pg_hba.conf of every member: a local cluster trusts
// connections from this machine, on its Unix sockets and on loopback TCP.
const hba = "# Written by shardline on every start; changes here are lost.\n" +
	"# A local cluster trusts connections from this machine.\n" +
	"local all all trust\n" +
	"host all all 127.0.0.1/32 trust\n" +
	"host replication all 127.0.0.1/32 trust\n"

// basebackup creates a replica's data directory from its primary, with a
// physical replication slot and the settings that make it stream.
func (m *member) basebackup(ctx context.Context, noSync bool) error {
	args := []string{
		"-h", "127.0.0.1", "-p", strconv.Itoa(m.primary.Port), "-U", "postgres",
		"-D", m.dataDir, "-R", "-X", "stream", "-C", "-S", m.Slot, "--checkpoint=fast",
	}
	if noSync {
		args = append(args, "--no-sync")
	}
	m.log.Info("pg_basebackup", "from", m.primary.Name, "slot", m.Slot)
	if _, err := m.run.run(ctx, m.workDir(), "pg_basebackup", args...); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	return nil
}

// configure writes the settings file and pg_hba.conf of m.
func (m *member) configure(conf map[string]string) error {
	var b strings.Builder
	b.WriteString("# Written by shardline from manifest.json on every start; changes here are lost.\n")
	set := func(k, v string) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(v, "'", "''"))
	}
	set("listen_addresses", "127.0.0.1")
	set("port", strconv.Itoa(m.Port))
	set("unix_socket_directories", m.socketDir)
	// A replica's walreceiver reports cluster_name as its application_name,
	// which is how its primary's pg_stat_replication names it.
	set("cluster_name", m.Name)
	set("wal_level", "logical")
	set("max_wal_senders", "10")
	set("max_replication_slots", "10")
	set("hot_standby", "on")
	set("max_connections", "300")
	set("shared_buffers", "128MB")
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		set(k, conf[k])
	}
	if err := m.run.writeFile(filepath.Join(m.dataDir, settingsFile), []byte(b.String())); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	// Rewritten too, so that a cluster made before the servers had Unix
	// sockets lets clients in on them.
	if err := m.run.writeFile(filepath.Join(m.dataDir, "pg_hba.conf"), []byte(hba)); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	return nil
}

// running reports whether a server runs on m's data directory.
func (m *member) running(ctx context.Context) (bool, error) {
	if _, err := os.Stat(m.dataDir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	_, err := m.run.run(ctx, m.workDir(), "pg_ctl", "status", "-D", m.dataDir)
	switch code := exitCode(err); {
	case err == nil:
		return true, nil
	case code == 3:
		return false, nil
	default:
		return false, fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
}

// start starts m's server and waits until it accepts connections. A port
// taken by someone else is an error wrapping ErrPortInUse.
func (m *member) start(ctx context.Context) error {
	if err := checkPortFree(m.Port); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	var logStart int64
	if fi, err := os.Stat(m.logFile); err == nil {
		logStart = fi.Size()
	}
	m.log.Info("starting", "port", m.Port)
	_, err := m.run.run(ctx, m.workDir(), "pg_ctl", "start", "-D", m.dataDir, "-l", m.logFile, "-w", "-t", startTimeout, "-s")
	if err == nil {
		return nil
	}
	serverLog := readFrom(m.logFile, logStart)
	if strings.Contains(serverLog, "Address already in use") {
		err = fmt.Errorf("%w: %d on 127.0.0.1 (taken while the server started: %w)", ErrPortInUse, m.Port, err)
	}
	return fmt.Errorf("postgres: member %s: %w\nserver log %s:\n%s", m.Name, err, m.logFile, tail(serverLog, 15))
}

// stop stops m's server in mode ("fast" or "immediate"). With fallback, a
// fast stop that does not finish in time becomes an immediate one, and a
// postmaster that survives that is killed. Stopping a stopped server does
// nothing.
func (m *member) stop(ctx context.Context, mode string, fallback bool) error {
	up, err := m.running(ctx)
	if err != nil || !up {
		return err
	}
	// pg_ctl stop -w returns once postmaster.pid is gone, which the
	// postmaster removes just before it exits: wait for the process too,
	// so that a stopped member has no process left.
	pid := m.pid()
	m.log.Info("stopping", "mode", mode)
	err = m.pgctlStop(ctx, mode, pid)
	if err == nil || !fallback {
		if err != nil {
			return fmt.Errorf("postgres: member %s: %w", m.Name, err)
		}
		return nil
	}
	if mode != "immediate" {
		m.log.Warn("stop failed; stopping in immediate mode", "mode", mode, "err", err)
		if err = m.pgctlStop(ctx, "immediate", pid); err == nil {
			return nil
		}
	}
	if p := m.pid(); p > 0 {
		pid = p
	}
	if pid <= 0 {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	m.log.Error("stop failed; killing the postmaster", "pid", pid, "err", err)
	return m.kill(ctx, pid)
}

// pgctlStop runs pg_ctl stop in mode and waits until postmaster pid (0 when
// unknown) has exited.
func (m *member) pgctlStop(ctx context.Context, mode string, pid int) error {
	if _, err := m.run.run(ctx, m.workDir(), "pg_ctl", "stop", "-D", m.dataDir, "-m", mode, "-w", "-t", stopTimeout, "-s"); err != nil {
		return err
	}
	if pid <= 0 {
		return nil
	}
	if err := waitGone(ctx, pid, exitTimeout); err != nil {
		return fmt.Errorf("postmaster %d still running after pg_ctl stop: %w", pid, err)
	}
	return nil
}

// kill kills postmaster pid (and its process group when it leads one) and
// waits until it is gone.
func (m *member) kill(ctx context.Context, pid int) error {
	// A stale postmaster.pid may name a process id reused since.
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err == nil && !strings.Contains(string(cmdline), m.dataDir) {
		return fmt.Errorf("postgres: member %s: process %d from postmaster.pid is not its server; not killing it", m.Name, pid)
	}
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	} else {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := waitGone(ctx, pid, 5*time.Second); err != nil {
		return fmt.Errorf("postgres: member %s: postmaster %d survived SIGKILL: %w", m.Name, pid, err)
	}
	return nil
}

// pid returns the postmaster's process id from postmaster.pid, or 0 when
// there is none.
func (m *member) pid() int {
	data, err := os.ReadFile(filepath.Join(m.dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	return pid
}

// createDatabase creates db on a primary unless it exists.
func (m *member) createDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, m.dsn("postgres"))
	if err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	if exists {
		return nil
	}
	m.log.Info("creating database", "database", db)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("postgres: member %s: create database %s: %w", m.Name, db, err)
	}
	return nil
}

// waitStreaming polls primary m until each of replicas streams from it,
// for at most timeout.
func (m *member) waitStreaming(ctx context.Context, replicas []*member, timeout time.Duration) error {
	if len(replicas) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := make([]string, len(replicas))
	for i, r := range replicas {
		want[i] = r.Name
	}
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var missing []string
	var lastErr error
	for {
		missing, lastErr = m.notStreaming(ctx, &conn, want)
		if lastErr == nil && len(missing) == 0 {
			m.log.Info("replicas streaming", "replicas", want)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: shard %s: replicas %v not streaming from %s after %v (see their server logs): %w",
				m.shard, missing, m.Name, timeout, errors.Join(ctx.Err(), lastErr))
		case <-tick.C:
		}
	}
}

// notStreaming returns the names in want that m's pg_stat_replication does
// not show as streaming. It (re)connects *conn as needed.
func (m *member) notStreaming(ctx context.Context, conn **pgx.Conn, want []string) ([]string, error) {
	if *conn == nil {
		c, err := pgx.Connect(ctx, m.dsn("postgres"))
		if err != nil {
			return want, err
		}
		*conn = c
	}
	rows, err := (*conn).Query(ctx, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
	if err != nil {
		(*conn).Close(ctx)
		*conn = nil
		return want, err
	}
	streaming, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return want, err
	}
	var missing []string
	for _, name := range want {
		if !slices.Contains(streaming, name) {
			missing = append(missing, name)
		}
	}
	return missing, nil
}

// waitGone polls until process pid no longer exists.
func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !processGone(pid) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// processGone reports whether pid no longer runs (a zombie counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}

// readFrom returns the contents of path from offset on, at most 64 KiB.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > 64<<10 {
		offset = fi.Size() - 64<<10
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	data, _ := io.ReadAll(f)
	return string(data)
}

// dsnValue quotes v for a keyword/value connection string when it holds a
// space, a quote or a backslash (or is empty).
func dsnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
