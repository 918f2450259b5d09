package bench

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// renderValid checks that c is valid and renders it on port 40001 with
// the auth file /x/userlist.txt.
func renderValid(t *testing.T, c PgBouncerConfig) (ini, users string) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ini, users, err := c.Render(40001, "/x/userlist.txt")
	if err != nil {
		t.Fatal(err)
	}
	return ini, users
}

func TestPgBouncerRender(t *testing.T) {
	c := PgBouncerConfig{Dir: "/x", Server: "postgres://postgres@127.0.0.1:15432/app?sslmode=disable"}
	ini, users := renderValid(t, c)
	want := `; Written by shardline bench for one run; deleted afterwards.
[databases]
app = host='127.0.0.1' port=15432 dbname='app' user='postgres'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 40001
unix_socket_dir = 
auth_type = trust
auth_file = /x/userlist.txt
pool_mode = transaction
default_pool_size = 20
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
max_db_connections = 0
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
log_stats = 0
stats_period = 60
`
	if ini != want {
		t.Errorf("Render ini =\n%s\nwant\n%s", ini, want)
	}
	if users != "\"postgres\" \"\"\n" {
		t.Errorf("Render users = %q", users)
	}
}

func TestPgBouncerRenderOptions(t *testing.T) {
	c := PgBouncerConfig{
		Dir: "/x", Server: "host=127.0.0.1 port=5433 dbname=shard1 user=o'neil password=p\"w",
		Database: "app", PoolSize: 5, MaxClientConn: 3000, MaxPreparedStatements: 100,
	}
	ini, users, err := c.Render(6000, "/x/u.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"app = host='127.0.0.1' port=5433 dbname='shard1' user='o''neil' password='p\"w'\n",
		"default_pool_size = 5\n", "max_client_conn = 3000\n", "max_prepared_statements = 100\n",
	} {
		if !strings.Contains(ini, want) {
			t.Errorf("ini lacks %q:\n%s", want, ini)
		}
	}
	if users != "\"o'neil\" \"p\"\"w\"\n" {
		t.Errorf("users = %q", users)
	}
}

// TestPgBouncerRenderSocket checks that a server DSN whose first host is
// a Unix socket directory (as `shardline up` publishes) gives PgBouncer
// that directory.
func TestPgBouncerRenderSocket(t *testing.T) {
	c := PgBouncerConfig{Dir: "/x", Server: "host=/tmp/c/pg/run,127.0.0.1 port=17000 user=postgres dbname=app sslmode=disable"}
	ini, _ := renderValid(t, c)
	if want := "app = host='/tmp/c/pg/run' port=17000 dbname='app' user='postgres'\n"; !strings.Contains(ini, want) {
		t.Errorf("ini lacks %q:\n%s", want, ini)
	}
}

// TestPgBouncerRenderAlso checks that each server of Also gets a
// [databases] entry of its own name after the first server's.
func TestPgBouncerRenderAlso(t *testing.T) {
	c := PgBouncerConfig{Dir: "/x", Server: "host=/run/a port=17000 user=postgres dbname=app",
		Also: []PgBouncerDatabase{{Name: "app_s2", Server: "host=/run/a port=17001 user=postgres dbname=app"}}}
	ini, _ := renderValid(t, c)
	want := "[databases]\n" +
		"app = host='/run/a' port=17000 dbname='app' user='postgres'\n" +
		"app_s2 = host='/run/a' port=17001 dbname='app' user='postgres'\n\n[pgbouncer]\n"
	if !strings.Contains(ini, want) {
		t.Errorf("ini lacks %q:\n%s", want, ini)
	}
}

func TestPgBouncerConfigValidate(t *testing.T) {
	good := PgBouncerConfig{Dir: "/x", Server: "postgres://postgres@127.0.0.1:5432/app"}
	tests := []struct {
		name   string
		change func(*PgBouncerConfig)
		want   string
	}{
		{"no dir", func(c *PgBouncerConfig) { c.Dir = "" }, "Dir"},
		{"bad dsn", func(c *PgBouncerConfig) { c.Server = "postgres://a@b:x/y" }, "server DSN"},
		{"db name", func(c *PgBouncerConfig) { c.Database = "a b" }, "database name"},
		{"also bad dsn", func(c *PgBouncerConfig) {
			c.Also = []PgBouncerDatabase{{Name: "b", Server: "postgres://a@b:x/y"}}
		}, "database 2 (b): server DSN"},
		{"also same name", func(c *PgBouncerConfig) {
			c.Also = []PgBouncerDatabase{{Name: "app", Server: "postgres://postgres@127.0.0.1:5433/app"}}
		}, `"app" given twice`},
		{"also no name", func(c *PgBouncerConfig) {
			c.Also = []PgBouncerDatabase{{Server: "postgres://postgres@127.0.0.1:5433/app"}}
		}, "database name"},
		{"also other user", func(c *PgBouncerConfig) {
			c.Also = []PgBouncerDatabase{{Name: "b", Server: "postgres://bob@127.0.0.1:5433/app"}}
		}, "one login"},
		{"port", func(c *PgBouncerConfig) { c.ListenPort = 70000 }, "port"},
		{"pool", func(c *PgBouncerConfig) { c.PoolSize = -1 }, "pool size"},
		{"clients", func(c *PgBouncerConfig) { c.MaxClientConn = -1 }, "max_client_conn"},
	}
	for _, tt := range tests {
		c := good
		tt.change(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestParsePgBouncerVersion(t *testing.T) {
	for in, want := range map[string][3]int{
		"PgBouncer 1.18.0":  {1, 18, 1},
		"PgBouncer 1.21.0":  {1, 21, 1},
		"PgBouncer 2.0":     {2, 0, 1},
		"pgbouncer 1.18":    {0, 0, 0},
		"PgBouncer":         {0, 0, 0},
		"PgBouncer x.y":     {0, 0, 0},
		"PgBouncer 1":       {0, 0, 0},
		"PgBouncer 1.22rc1": {0, 0, 0},
	} {
		ma, mi, ok := parsePgBouncerVersion(in)
		okInt := 0
		if ok {
			okInt = 1
		}
		if [3]int{ma, mi, okInt} != want {
			t.Errorf("parsePgBouncerVersion(%q) = %d, %d, %v; want %v", in, ma, mi, ok, want)
		}
	}
}

// TestPgBouncerStartStop runs a real PgBouncer in front of a throwaway
// PostgreSQL: it serves pgbench through transaction pooling, refuses
// nothing pgbench sends, reports its pid and version, and stops on Close.
func TestPgBouncerStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	requirePgBouncer(t)
	dsn := startPostgres(t)
	ctx := t.Context()
	dir := filepath.Join(pgtest.Dir(t), "pgbouncer")
	b, err := StartPgBouncer(ctx, PgBouncerConfig{Dir: dir, Server: dsn, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Version(), "PgBouncer ") || b.PID() <= 0 || b.Err() != nil {
		t.Errorf("version %q pid %d err %v", b.Version(), b.PID(), b.Err())
	}
	if os.Geteuid() == 0 {
		st, err := ReadProcStat(b.PID())
		if err != nil {
			t.Fatal(err)
		}
		if st.Comm != "pgbouncer" {
			t.Errorf("comm = %q", st.Comm)
		}
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(b.PID()) + "/status")
		if strings.Contains(string(b), "\nUid:\t0\t") {
			t.Error("pgbouncer runs as root")
		}
	}
	e := b.Endpoint()
	if !strings.HasPrefix(e.DSN, "postgres://postgres@127.0.0.1:") {
		t.Errorf("Endpoint = %+v", e)
	}
	pb, err := NewPgbench("", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Init goes through PgBouncer too (and with a PGOPTIONS it ignores).
	if err := pb.Init(ctx, "pgbouncer", Endpoint{DSN: e.DSN, Options: "-c shardline.tenant=t1"}, 1); err != nil {
		t.Fatalf("Init through pgbouncer: %v", err)
	}
	if err := pb.Check(ctx, "pgbouncer", e); err != nil {
		t.Fatalf("Check: %v", err)
	}
	pc, err := pgconn.ParseConfig(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port)))
	// Listening on loopback only, no Unix socket.
	if _, err := os.Stat("/tmp/.s.PGSQL." + strconv.Itoa(int(pc.Port))); err == nil {
		t.Error("pgbouncer made a Unix socket in /tmp")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if b.Err() == nil {
		t.Error("Err after Close = nil")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("pgbouncer still listening after Close")
	}
}

// TestPgBouncerTwoServers runs one PgBouncer in front of two PostgreSQL
// servers, one per database name (the pgbouncer-2shards target): each
// endpoint reaches its own server.
func TestPgBouncerTwoServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	requirePgBouncer(t)
	shards := pgtest.ForTest(t, 2, 0).Shards()
	ctx := t.Context()
	b, err := StartPgBouncer(ctx, PgBouncerConfig{Dir: filepath.Join(pgtest.Dir(t), "pgbouncer"), Server: shards[0].Primary.DSN, PoolSize: 2,
		Also: []PgBouncerDatabase{{Name: "second", Server: shards[1].Primary.DSN}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	eps := b.Endpoints()
	if len(eps) != 2 || eps[0] != b.Endpoint() {
		t.Fatalf("Endpoints = %+v, Endpoint = %+v", eps, b.Endpoint())
	}
	for i, e := range eps {
		want, err := pgconn.ParseConfig(shards[i].Primary.DSN)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pgconn.Connect(ctx, e.DSN)
		if err != nil {
			t.Fatalf("endpoint %d: %v", i, err)
		}
		res, err := c.Exec(ctx, "SHOW port").ReadAll()
		c.Close(ctx)
		if err != nil {
			t.Fatalf("endpoint %d: SHOW port: %v", i, err)
		}
		if got := string(res[0].Rows[0][0]); got != strconv.Itoa(int(want.Port)) {
			t.Errorf("endpoint %d (%s) reached the server on port %s, want %d", i, e.DSN, got, want.Port)
		}
	}
}

func TestStartPgBouncerFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PgBouncer")
	}
	requirePgBouncer(t)
	ctx := context.Background()
	// A port that is taken: PgBouncer exits and the error says why.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartPgBouncer(ctx, PgBouncerConfig{Dir: pgtest.Dir(t), Server: "postgres://postgres@127.0.0.1:1/app", ListenPort: port})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("StartPgBouncer on a taken port = %v, want ErrNotReady saying the address is in use", err)
	}
	if _, err := StartPgBouncer(ctx, PgBouncerConfig{Dir: t.TempDir(), Server: "x", Path: "/nonexistent/pgbouncer"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad server: %v", err)
	}
	if _, err := StartPgBouncer(ctx, PgBouncerConfig{Dir: t.TempDir(), Server: "postgres://postgres@127.0.0.1:1/app", Path: "/nonexistent/pgbouncer"}); !errors.Is(err, ErrPgBouncerNotFound) {
		t.Errorf("missing binary: %v", err)
	}
}

// TestPgBouncerRenderTLS: a TLS pair requires TLS of clients.
func TestPgBouncerRenderTLS(t *testing.T) {
	ini, _ := renderValid(t, PgBouncerConfig{Dir: "/x", Server: "host=/run/a port=17000 user=postgres dbname=app",
		TLSCertFile: "/x/client-server.crt", TLSKeyFile: "/x/client-server.key"})
	for _, want := range []string{"client_tls_sslmode = require\n", "client_tls_cert_file = /x/client-server.crt\n", "client_tls_key_file = /x/client-server.key\n"} {
		if !strings.Contains(ini, want) {
			t.Errorf("ini lacks %q:\n%s", want, ini)
		}
	}
	plain, _ := renderValid(t, PgBouncerConfig{Dir: "/x", Server: "host=/run/a port=17000 user=postgres dbname=app"})
	if strings.Contains(plain, "client_tls") {
		t.Errorf("ini without a pair has TLS settings:\n%s", plain)
	}
}

// TestPgBouncerTLS runs PgBouncer with client TLS: pgbench gets in with
// the endpoint's sslmode=require, a plaintext client does not.
func TestPgBouncerTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	requirePgBouncer(t)
	dsn := startPostgres(t)
	ctx := t.Context()
	b := &builder{cfg: SetupConfig{Dir: t.TempDir()}}
	cert, key, err := b.tlsPair()
	if err != nil {
		t.Fatal(err)
	}
	pgb, err := StartPgBouncer(ctx, PgBouncerConfig{Dir: filepath.Join(pgtest.Dir(t), "pgbouncer"), Server: dsn, PoolSize: 2, TLSCertFile: cert, TLSKeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	defer pgb.Close()
	e := pgb.Endpoint()
	if !strings.HasSuffix(e.DSN, "sslmode=require") {
		t.Fatalf("endpoint %s", e.DSN)
	}
	pb, err := NewPgbench("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Init(ctx, "pgbouncer-tls", e, 1); err != nil {
		t.Fatalf("pgbench -i over TLS: %v", err)
	}
	if err := pb.Check(ctx, "pgbouncer-tls", e); err != nil {
		t.Fatalf("pgbench over TLS: %v", err)
	}
	c, err := pgconn.Connect(ctx, strings.Replace(e.DSN, "sslmode=require", "sslmode=disable", 1))
	if err == nil {
		c.Close(ctx)
		t.Fatal("PgBouncer with client_tls_sslmode=require took a plaintext client")
	}
}
