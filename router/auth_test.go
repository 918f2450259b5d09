package router

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/auth"
	"github.com/shardline/shardline/storage/etcdstore"
)

// authRouter is a router with SCRAM-SHA-256 over the test cluster's users
// in etcd, followed by a real watcher.
type authRouter struct {
	r     *Router
	addr  string
	users *etcdstore.UserWatcher
	reg   *prometheus.Registry
}

func startAuthRouter(t *testing.T, method AuthMethod) *authRouter {
	t.Helper()
	return startAuthRouterWith(t, Config{Auth: method})
}

// startAuthRouterWith is startAuthRouter with more of the router's Config.
func startAuthRouterWith(t *testing.T, cfg Config) *authRouter {
	t.Helper()
	needCluster(t)
	w := etcdstore.NewUserWatcher(env.store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("user watcher: %v", err)
		}
	})
	<-w.Ready()
	reg := prometheus.NewRegistry()
	cfg.PoolSize, cfg.WaitTimeout, cfg.Users, cfg.Registerer = 2, 5*time.Second, w, reg
	r, addr := startRouterAt(t, cfg)
	return &authRouter{r: r, addr: addr, users: w, reg: reg}
}

// startRouterAt is startRouter returning the address.
func startRouterAt(t *testing.T, cfg Config) (*Router, string) {
	t.Helper()
	cfg.Placement = env.watcher
	cfg.NoIOUring = testNoIOUring
	return serveRouter(t, cfg)
}

// addUser adds a user with password to etcd and waits until the router's
// watcher has it; the user is removed when the test ends.
func (a *authRouter) addUser(t *testing.T, name, password string, kind shardline.UserKind, tenants ...shardline.TenantID) {
	t.Helper()
	v, err := auth.NewVerifier(password, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	u, err := env.store.AddUser(ctx, shardline.User{Name: name, Kind: kind, Tenants: tenants, Verifier: v.String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.users.WaitRevision(ctx, u.ModRevision); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.store.RemoveUser(context.Background(), name) })
}

// dsn is a URL for user and password ("" for none) with query options.
func (a *authRouter) dsn(user, password, opts string) string {
	u := url.URL{Scheme: "postgres", Host: a.addr, Path: "/app", RawQuery: "sslmode=disable"}
	u.User = url.User(user)
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	if opts != "" {
		u.RawQuery += "&" + opts
	}
	return u.String()
}

func (a *authRouter) connect(user, password, opts string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, a.dsn(user, password, opts))
}

func (a *authRouter) failures(reason string) float64 {
	return testutil.ToFloat64(a.r.auth.failures.WithLabelValues(reason))
}

// serverError returns err's SQLSTATE and message, or fails the test.
func serverError(t *testing.T, err error) (code, msg string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a server error", err)
	}
	return pe.Code, pe.Message
}

func TestSCRAMWithPgx(t *testing.T) {
	a := startAuthRouter(t, AuthSCRAM)
	a.addUser(t, "scram_pgx", "right horse", shardline.UserApp)
	c, err := a.connect("scram_pgx", "right horse", "options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var one int
	if err := c.QueryRow(testCtx(t), "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}

	wrong0, unknown0 := a.failures(failWrongPassword), a.failures(failUnknownUser)
	for _, tc := range []struct{ user, password string }{{"scram_pgx", "wrong horse"}, {"scram_nobody", "right horse"}} {
		_, err := a.connect(tc.user, tc.password, "")
		code, msg := serverError(t, err)
		if want := `password authentication failed for user "` + tc.user + `"`; code != "28P01" || msg != want {
			t.Errorf("user %s: %s %q, want 28P01 %q", tc.user, code, msg, want)
		}
	}
	if a.failures(failWrongPassword) != wrong0+1 || a.failures(failUnknownUser) != unknown0+1 {
		t.Errorf("auth failures: wrong_password +%v, unknown_user +%v; want +1 each",
			a.failures(failWrongPassword)-wrong0, a.failures(failUnknownUser)-unknown0)
	}
}

// psql, with PGPASSWORD, logs in; with a wrong one it reports PostgreSQL's
// message; without one it gives up without the router counting a failed
// password.
func TestSCRAMWithPsql(t *testing.T) {
	psql := "/usr/lib/postgresql/15/bin/psql"
	if _, err := os.Stat(psql); err != nil {
		var lerr error
		if psql, lerr = exec.LookPath("psql"); lerr != nil {
			t.Fatalf("psql not found: %v", err)
		}
	}
	a := startAuthRouter(t, AuthSCRAM)
	a.addUser(t, "scram_psql", "p$ql pass", shardline.UserApp, "acme")
	run := func(password string) (string, error) {
		cmd := exec.CommandContext(testCtx(t), psql, "-X", "-w", "-At", "-c", "SHOW shardline.tenant", a.dsn("scram_psql", "", ""))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
		if password == "" {
			cmd.Env = append(os.Environ(), "PGPASSFILE=/nonexistent")
		}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	out, err := run("p$ql pass")
	if err != nil || out != "acme" {
		t.Fatalf("psql with the password: %v: %s (want the bound tenant, acme)", err, out)
	}
	out, err = run("p$ql pasS")
	if err == nil || !strings.Contains(out, `password authentication failed for user "scram_psql"`) {
		t.Fatalf("psql with a wrong password: %v: %s", err, out)
	}
	abandoned, wrong := a.failures(failAbandoned), a.failures(failWrongPassword)
	out, err = run("")
	if err == nil || !strings.Contains(out, "no password supplied") {
		t.Fatalf("psql without a password: %v: %s", err, out)
	}
	// psql hangs up when asked for a password it does not have; the
	// router learns of it when it reads, after psql has exited.
	waitFor(t, "the abandoned exchange to be counted", func() bool { return a.failures(failAbandoned) == abandoned+1 })
	if a.failures(failWrongPassword) != wrong {
		t.Error("a client without a password was counted as a wrong password")
	}
}

// A user is known to the router as soon as the watcher has it, and refused
// as soon as it is removed: no restart.
func TestUsersFollowEtcd(t *testing.T) {
	a := startAuthRouter(t, AuthSCRAM)
	if _, err := a.connect("scram_later", "pw", ""); err == nil {
		t.Fatal("a user that does not exist yet logged in")
	}
	a.addUser(t, "scram_later", "pw", shardline.UserApp)
	c, err := a.connect("scram_later", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	rev, err := env.store.RemoveUser(testCtx(t), "scram_later")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.users.WaitRevision(testCtx(t), rev); err != nil {
		t.Fatal(err)
	}
	_, err = a.connect("scram_later", "pw", "")
	if code, _ := serverError(t, err); code != "28P01" {
		t.Fatalf("a removed user: %s, want 28P01", code)
	}
}

// A user bound to one tenant acts as it without any option, and every way
// of naming another tenant is 42501 with a hint; RESET and DISCARD ALL
// return to the bound tenant.
func TestTenantBoundUser(t *testing.T) {
	a := startAuthRouter(t, AuthSCRAM)
	a.addUser(t, "acme_only", "pw", shardline.UserApp, "acme")
	denied0 := testutil.ToFloat64(a.r.auth.tenantDenied)

	_, err := a.connect("acme_only", "pw", "options=-c%20shardline.tenant%3Dhooli")
	if code, msg := serverError(t, err); code != codeInsufficientPrivilege || !strings.Contains(msg, `may not act as tenant "hooli"`) {
		t.Fatalf("startup option naming another tenant: %s %q", code, msg)
	}
	c, err := a.connect("acme_only", "pw", "options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatalf("startup option naming the bound tenant: %v", err)
	}
	c.Close(context.Background())

	c, err = a.connect("acme_only", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := testCtx(t)
	show := func() string {
		t.Helper()
		var v string // in the simple protocol: DISCARD ALL drops pgx's cached statements
		if err := c.QueryRow(ctx, "SHOW shardline.tenant", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := show(); got != "acme" {
		t.Fatalf("tenant of a session without options = %q, want acme", got)
	}
	var bound string
	if err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&bound); err != nil || bound != "acme" {
		t.Fatalf("tenant bound on the server = %q, %v; want acme", bound, err)
	}
	for _, sql := range []string{
		"SET shardline.tenant = 'hooli'",
		"SET shardline.tenant TO hooli",
		"/* tenant='hooli' */ SELECT 1",
		"SELECT 1 /* tenant='hooli' */",
	} {
		_, err := c.Exec(ctx, sql)
		code, msg := serverError(t, err)
		var pe *pgconn.PgError
		errors.As(err, &pe)
		if code != codeInsufficientPrivilege || !strings.Contains(msg, "hooli") || !strings.Contains(pe.Hint, "bound to tenant acme") {
			t.Errorf("%s: %s %q hint %q", sql, code, msg, pe.Hint)
		}
		if got := show(); got != "acme" {
			t.Fatalf("after %s the tenant is %q, want acme", sql, got)
		}
	}
	for _, sql := range []string{"SET shardline.tenant = 'acme'", "/* tenant='acme' */ SELECT 1", "RESET shardline.tenant", "SET shardline.tenant TO DEFAULT", "DISCARD ALL"} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got := show(); got != "acme" {
			t.Fatalf("after %s the tenant is %q, want acme", sql, got)
		}
	}
	// In a transaction too: the refusal aborts it, nothing switches.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET shardline.tenant = 'hooli'"); err == nil {
		t.Fatal("SET to another tenant in a transaction succeeded")
	}
	_ = tx.Rollback(ctx)
	if got := show(); got != "acme" {
		t.Fatalf("after a refused SET in a transaction the tenant is %q", got)
	}
	if got := testutil.ToFloat64(a.r.auth.tenantDenied) - denied0; got != 6 {
		t.Errorf("tenant denials counted: %v, want 6", got)
	}
}

// A user of several tenants has none until it names one of them; an admin
// user may name any tenant.
func TestMultiTenantAndAdminUsers(t *testing.T) {
	a := startAuthRouter(t, AuthSCRAM)
	a.addUser(t, "two_tenants", "pw", shardline.UserApp, "acme", "globex")
	a.addUser(t, "ops_admin", "pw", shardline.UserAdmin)
	ctx := testCtx(t)
	c, err := a.connect("two_tenants", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var v string
	if err := c.QueryRow(ctx, "SHOW shardline.tenant").Scan(&v); err != nil || v != "" {
		t.Fatalf("tenant of a user of two tenants = %q, %v; want none", v, err)
	}
	for _, ok := range []string{"acme", "globex"} {
		if _, err := c.Exec(ctx, "SET shardline.tenant = '"+ok+"'"); err != nil {
			t.Fatalf("SET to its tenant %s: %v", ok, err)
		}
	}
	_, err = c.Exec(ctx, "SET shardline.tenant = 'hooli'")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeInsufficientPrivilege || !strings.Contains(pe.Hint, "tenants acme, globex") {
		t.Fatalf("SET to another tenant: %v", err)
	}
	if _, err := c.Exec(ctx, "RESET shardline.tenant"); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SHOW shardline.tenant").Scan(&v); err != nil || v != "" {
		t.Fatalf("after RESET the tenant is %q, %v; want none", v, err)
	}

	admin, err := a.connect("ops_admin", "pw", "options=-c%20shardline.tenant%3Dhooli")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "SET shardline.tenant = 'acme'"); err != nil {
		t.Fatalf("an admin naming a tenant: %v", err)
	}
}

// Trust asks for no password, keeps known users' tenants, and serves only
// on loopback.
func TestTrust(t *testing.T) {
	a := startAuthRouter(t, AuthTrust)
	a.addUser(t, "trust_bound", "pw", shardline.UserApp, "acme")
	c, err := a.connect("trust_bound", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(testCtx(t), "SET shardline.tenant = 'hooli'"); err == nil {
		t.Fatal("a bound user switched tenants under trust")
	}
	anyone, err := a.connect("trust_anyone", "", "options=-c%20shardline.tenant%3Dhooli")
	if err != nil {
		t.Fatal(err)
	}
	anyone.Close(context.Background())

	r, err := New(Config{Placement: env.watcher, Auth: AuthTrust})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Serve(ln); err == nil || !strings.Contains(err.Error(), "only a loopback address") {
		t.Fatalf("Serve with trust on %s = %v, want a refusal", ln.Addr(), err)
	}
}

func TestAuthConfig(t *testing.T) {
	if _, err := New(Config{Placement: staticPlacement{}}); err == nil || !strings.Contains(err.Error(), "Users is required") {
		t.Fatalf("New with SCRAM and no users = %v", err)
	}
	if _, err := New(Config{Placement: staticPlacement{}, Auth: "md5"}); err == nil || !strings.Contains(err.Error(), "unknown authentication method") {
		t.Fatalf("New with md5 = %v", err)
	}
}

// Over TLS, SCRAM-SHA-256 works with pgx and psql (which would bind the
// channel if the router offered SCRAM-SHA-256-PLUS: they send gs2 flag
// 'y'); a client that requires channel binding is refused by itself, as
// the router offers none.
func TestSCRAMOverTLS(t *testing.T) {
	_, files := testCert(t)
	a := startAuthRouterWith(t, Config{Auth: AuthSCRAM, TLS: files.Config()})
	a.addUser(t, "scram_tls", "tls pw", shardline.UserApp, "acme")
	c, err := pgx.Connect(testCtx(t), strings.Replace(a.dsn("scram_tls", "tls pw", ""), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatal(err)
	}
	if tlsVersion(c) == 0 {
		t.Fatal("pgx connected without TLS")
	}
	c.Close(context.Background())
	_, err = pgx.Connect(testCtx(t), strings.Replace(a.dsn("scram_tls", "tls pW", ""), "sslmode=disable", "sslmode=require", 1))
	if code, _ := serverError(t, err); code != codeInvalidPassword {
		t.Fatalf("a wrong password over TLS: %s", code)
	}
	psql := psqlPath(t)
	dsn := strings.Replace(a.dsn("scram_tls", "", ""), "sslmode=disable", "sslmode=require", 1)
	cmd := exec.Command(psql, "-X", "-w", "-At", "-c", "SHOW shardline.tenant", dsn)
	cmd.Env = append(os.Environ(), "PGPASSWORD=tls pw")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "acme" {
		t.Fatalf("psql over TLS: %v: %s", err, out)
	}
	cmd = exec.Command(psql, "-X", "-w", "-At", "-c", "SELECT 1", dsn+"&channel_binding=require")
	cmd.Env = append(os.Environ(), "PGPASSWORD=tls pw")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "channel binding") {
		t.Fatalf("psql with channel_binding=require: %v: %s", err, out)
	}
}
