package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestLocalCluster walks one cluster through its life: create, replicate,
// stop a member, stop everything, restart with the same data.
func TestLocalCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := pgtest.Dir(t)

	start := time.Now()
	l, err := pgtest.Start(ctx, dir, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created 2x1 in %v", time.Since(start).Round(time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			l.Stop(context.Background())
		}
	}()

	shards := l.Shards()
	if len(shards) != 2 {
		t.Fatalf("%d shards, want 2", len(shards))
	}
	for i, s := range shards {
		id := "s" + strconv.Itoa(i+1)
		if string(s.ID) != id || s.Primary.Name != id+"-primary" || len(s.Replicas) != 1 || s.Replicas[0].Name != id+"-replica1" {
			t.Fatalf("shard %d = %+v", i, s)
		}
		checkMemberDSN(t, ctx, s.Primary.DSN)
	}
	if got := l.Members(); len(got) != 4 || got[1].Port != got[0].Port+1 || got[2].Port != got[0].Port+2 {
		t.Fatalf("members %+v: want 4 on consecutive ports", got)
	}

	// The router's server role: can log in, is neither superuser nor
	// BYPASSRLS, and may use what postgres creates in schema public.
	for _, s := range shards {
		if s.ServerUser != postgres.AppRole {
			t.Fatalf("shard %s: ServerUser %q, want %s", s.ID, s.ServerUser, postgres.AppRole)
		}
		checkAppRole(t, ctx, s.Primary.DSN)
	}

	// A row written on each primary shows up on its replica.
	for _, s := range shards {
		exec(t, ctx, s.Primary.DSN, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
		exec(t, ctx, s.Primary.DSN, "INSERT INTO kv VALUES ('shard', '"+string(s.ID)+"')")
	}
	for _, s := range shards {
		awaitValue(t, ctx, s.Replicas[0].DSN, "shard", string(s.ID))
		if v := queryString(t, ctx, s.Replicas[0].DSN, "SELECT pg_is_in_recovery()::text"); v != "true" {
			t.Fatalf("%s: pg_is_in_recovery = %s", s.Replicas[0].Name, v)
		}
	}

	// A crashed replica comes back and catches up.
	if err := l.StopMember(ctx, "s1-replica1", "immediate"); err != nil {
		t.Fatal(err)
	}
	if pid, _ := l.PID("s1-replica1"); pid != 0 && !gone(pid) {
		t.Fatalf("s1-replica1 still runs as %d after StopMember", pid)
	}
	exec(t, ctx, shards[0].Primary.DSN, "INSERT INTO kv VALUES ('while-down', 'yes')")
	if err := l.StartMember(ctx, "s1-replica1"); err != nil {
		t.Fatal(err)
	}
	awaitValue(t, ctx, shards[0].Replicas[0].DSN, "while-down", "yes")
	if err := l.StopMember(ctx, "nope", "fast"); !errors.Is(err, postgres.ErrUnknownMember) {
		t.Fatalf("StopMember(nope) = %v, want ErrUnknownMember", err)
	}

	// A cluster made before the role existed: a restart creates it.
	for _, s := range shards {
		exec(t, ctx, s.Primary.DSN, "DROP OWNED BY "+postgres.AppRole+"; DROP ROLE "+postgres.AppRole)
	}

	// Stop leaves no server process behind, quickly, and is idempotent.
	var pids []int
	for _, m := range l.Members() {
		pid, err := l.PID(m.Name)
		if err != nil || pid <= 0 {
			t.Fatalf("PID(%s) = %d, %v", m.Name, pid, err)
		}
		pids = append(pids, pid)
	}
	start = time.Now()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	took := time.Since(start)
	t.Logf("stopped 4 members in %v", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("Stop took %v, want under 10s", took)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("postmaster %d still runs after Stop", pid)
		}
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
	if err := l.StartMember(ctx, "s1-primary"); !errors.Is(err, postgres.ErrStopped) {
		t.Fatalf("StartMember after Stop = %v, want ErrStopped", err)
	}

	// Restart on the same directory: the manifest wins over the config
	// (other shard count, other base port), and the data is still there.
	start = time.Now()
	l2, err := postgres.StartLocal(ctx, postgres.LocalConfig{Dir: dir, Shards: 3, BasePort: 40000, Logger: pgtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Stop(context.Background())
	t.Logf("restarted in %v", time.Since(start).Round(time.Millisecond))
	shards2 := l2.Shards()
	if fmt.Sprint(shards2) != fmt.Sprint(shards) {
		t.Fatalf("after restart shards = %v, want %v", shards2, shards)
	}
	for _, s := range shards2 {
		if v := queryString(t, ctx, s.Primary.DSN, "SELECT v FROM kv WHERE k = 'shard'"); v != string(s.ID) {
			t.Fatalf("%s after restart: %q", s.Primary.Name, v)
		}
		exec(t, ctx, s.Primary.DSN, "INSERT INTO kv VALUES ('after-restart', 'yes')")
		awaitValue(t, ctx, s.Replicas[0].DSN, "after-restart", "yes")
		checkAppRole(t, ctx, s.Primary.DSN)
		// Existing tables are granted too.
		if v := queryString(t, ctx, appRoleDSN(t, s.Primary.DSN), "SELECT v FROM kv WHERE k = 'after-restart'"); v != "yes" {
			t.Fatalf("%s as %s: %q", s.Primary.Name, postgres.AppRole, v)
		}
	}

	// A second process on the same directory is refused.
	if _, err := postgres.StartLocal(ctx, postgres.LocalConfig{Dir: dir}); !errors.Is(err, postgres.ErrDirLocked) {
		t.Fatalf("second StartLocal on a running dir = %v, want ErrDirLocked", err)
	}
}

// TestRestartAfterKill: a run killed without Stop leaves servers running;
// the next StartLocal on the directory takes them over.
func TestRestartAfterKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := pgtest.Dir(t)
	l, err := pgtest.Start(ctx, dir, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop(context.Background())
	pid, _ := l.PID("s1-primary")
	dsn := l.Shards()[0].Primary.DSN
	exec(t, ctx, dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")

	// Simulate the parent dying: its directory lock goes, its servers stay.
	postgres.ReleaseLockForTest(t, l)

	l2, err := postgres.StartLocal(ctx, postgres.LocalConfig{Dir: dir, Logger: pgtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Stop(context.Background())
	if !gone(pid) {
		t.Errorf("the old postmaster %d still runs", pid)
	}
	if v := queryString(t, ctx, dsn, "SELECT x::text FROM t"); v != "42" {
		t.Fatalf("after takeover: %q", v)
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = postgres.StartLocal(ctx, postgres.LocalConfig{Dir: pgtest.Dir(t), Shards: 1, Replicas: postgres.NoReplicas, BasePort: port})
	if !errors.Is(err, postgres.ErrPortInUse) {
		t.Fatalf("StartLocal on a taken port = %v, want ErrPortInUse", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q does not name port %d", err, port)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to fail", time.Since(start))
	}
}

func TestDirNotTraversable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	dir := pgtest.Dir(t)
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.StartLocal(context.Background(), postgres.LocalConfig{Dir: filepath.Join(closed, "cluster")})
	if !errors.Is(err, postgres.ErrDirNotTraversable) || !strings.Contains(err.Error(), closed) {
		t.Fatalf("StartLocal under a 0700 dir = %v, want ErrDirNotTraversable naming %s", err, closed)
	}
}

func TestApplySchema(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN

	good := `CREATE TABLE accounts (tenant_id text, id bigint, PRIMARY KEY (tenant_id, id));
		CREATE INDEX ON accounts (id);
		INSERT INTO accounts VALUES ('acme', 1);`
	if err := postgres.ApplySchema(ctx, dsn, good); err != nil {
		t.Fatal(err)
	}
	if v := queryString(t, ctx, dsn, "SELECT count(*)::text FROM accounts"); v != "1" {
		t.Fatalf("count = %s", v)
	}

	// The third statement fails: the first two must not stay.
	bad := `CREATE TABLE orders (tenant_id text, id bigint);
		INSERT INTO accounts VALUES ('acme', 2);
		INSERT INTO no_such_table VALUES (1);`
	err := postgres.ApplySchema(ctx, dsn, bad)
	if err == nil || !strings.Contains(err.Error(), "42P01") {
		t.Fatalf("ApplySchema(bad) = %v, want undefined_table 42P01", err)
	}
	if v := queryString(t, ctx, dsn, "SELECT coalesce(to_regclass('orders')::text, 'none')"); v != "none" {
		t.Errorf("table orders exists after a failed ApplySchema")
	}
	if v := queryString(t, ctx, dsn, "SELECT count(*)::text FROM accounts"); v != "1" {
		t.Errorf("accounts has %s rows after a failed ApplySchema, want 1", v)
	}
}

// checkAppRole checks postgres.AppRole on the server dsn names: it logs in,
// is neither superuser nor BYPASSRLS, and may read and write a table
// postgres creates in schema public after it (default privileges).
func checkAppRole(t *testing.T, ctx context.Context, dsn string) {
	t.Helper()
	q := "SELECT (rolcanlogin AND NOT rolsuper AND NOT rolbypassrls)::text FROM pg_roles WHERE rolname = '" + postgres.AppRole + "'"
	if v := queryString(t, ctx, dsn, q); v != "true" {
		t.Fatalf("role %s: login and neither superuser nor BYPASSRLS = %s", postgres.AppRole, v)
	}
	exec(t, ctx, dsn, "DROP TABLE IF EXISTS approle_check; CREATE TABLE approle_check (n serial PRIMARY KEY, v text)")
	if v := queryString(t, ctx, appRoleDSN(t, dsn), "INSERT INTO approle_check (v) VALUES ('x') RETURNING current_user::text"); v != postgres.AppRole {
		t.Fatalf("insert as %s: current_user %q", postgres.AppRole, v)
	}
}

// appRoleDSN is dsn (of either form Shards makes) with postgres.AppRole
// for its user.
func appRoleDSN(t *testing.T, dsn string) string {
	t.Helper()
	r := strings.NewReplacer("user=postgres ", "user="+postgres.AppRole+" ", "postgres://postgres@", "postgres://"+postgres.AppRole+"@")
	out := r.Replace(dsn)
	if out == dsn {
		t.Fatalf("DSN %q names no user postgres", dsn)
	}
	return out
}

func exec(t *testing.T, ctx context.Context, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryString(t *testing.T, ctx context.Context, dsn, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// awaitValue polls dsn until kv holds k = v, for at most 10 seconds.
func awaitValue(t *testing.T, ctx context.Context, dsn, k, v string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	var lastErr error
	for time.Now().Before(deadline) {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			lastErr = conn.QueryRow(ctx, "SELECT v FROM kv WHERE k = $1", k).Scan(&last)
			conn.Close(ctx)
			if lastErr == nil && last == v {
				return
			}
		} else {
			lastErr = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: kv[%s] = %q (%v) after 10s, want %q", dsn, k, last, lastErr, v)
}

// gone reports whether process pid has exited.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// checkMemberDSN checks that dsn reaches its server on a Unix socket in the
// cluster's run directory, and that its TCP fallback, 127.0.0.1 on the same
// port, reaches the same server.
func checkMemberDSN(t *testing.T, ctx context.Context, dsn string) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("primary DSN %q: %v", dsn, err)
	}
	if !strings.HasSuffix(cfg.Host, "/pg/run") || !filepath.IsAbs(cfg.Host) || len(cfg.Fallbacks) != 1 ||
		cfg.Fallbacks[0].Host != "127.0.0.1" || cfg.Fallbacks[0].Port != cfg.Port || cfg.Database != "app" {
		t.Fatalf("primary DSN %q: want the socket directory DIR/pg/run, then 127.0.0.1 on the same port, database app", dsn)
	}
	if v := queryString(t, ctx, dsn, "SELECT coalesce(inet_server_addr()::text, 'socket')"); v != "socket" {
		t.Fatalf("%s: connected over %s, want the Unix socket", dsn, v)
	}
	tcp := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app?sslmode=disable", cfg.Port)
	if a, b := queryString(t, ctx, dsn, "SELECT system_identifier::text FROM pg_control_system()"),
		queryString(t, ctx, tcp, "SELECT system_identifier::text FROM pg_control_system()"); a != b {
		t.Fatalf("the socket reaches system %s, TCP port %d reaches %s", a, cfg.Port, b)
	}
}
