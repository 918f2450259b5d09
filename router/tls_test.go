package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/shardline/shardline/internal/tlscert"
)

// testCert writes a self-signed pair for 127.0.0.1 and localhost and
// returns the certificate's file (a client's sslrootcert) and the pair.
func testCert(t testing.TB) (string, *CertFiles) {
	t.Helper()
	certPEM, keyPEM, err := tlscert.SelfSigned([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := LoadCertFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, files
}

// tlsRouter serves a router with TLS; it returns a DSN for tenant with
// the sslmode parameters left to the caller, the router's address and the
// certificate file.
func tlsRouter(t *testing.T, required bool) (dsn func(tenant, ssl string) string, addr, rootCert string) {
	t.Helper()
	rootCert, files := testCert(t)
	_, base := startRouter(t, Config{TLS: files.Config(), TLSRequired: required})
	addr = strings.TrimPrefix(strings.SplitN(base, "/app?", 2)[0], "postgres://app@")
	return func(tenant, ssl string) string {
		return fmt.Sprintf("postgres://app@%s/app?%s&options=-c%%20shardline.tenant%%3D%s", addr, ssl, tenant)
	}, addr, rootCert
}

func connectTLS(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// tlsVersion is the TLS version of c's connection, 0 for plaintext.
func tlsVersion(c *pgx.Conn) uint16 {
	if tc, ok := c.PgConn().Conn().(*tls.Conn); ok {
		return tc.ConnectionState().Version
	}
	return 0
}

// TestTLSWithPgx: sslmode=require and verify-full (with the router's
// certificate as sslrootcert, for its IP address and for localhost), and
// direct TLS (sslnegotiation=direct); each session runs queries whose
// messages span many TLS records both ways, and a pipelined batch.
func TestTLSWithPgx(t *testing.T) {
	dsn, addr, root := tlsRouter(t, false)
	_, port, _ := net.SplitHostPort(addr)
	ctx := testCtx(t)
	for _, ssl := range []string{
		"sslmode=require",
		"sslmode=verify-full&sslrootcert=" + root,
		"sslmode=verify-full&sslrootcert=" + root + "&host=localhost&port=" + port,
		"sslmode=require&sslnegotiation=direct",
	} {
		t.Run(ssl, func(t *testing.T) {
			c := connectTLS(t, dsn("tlspgx", ssl))
			if v := tlsVersion(c); v < tls.VersionTLS12 {
				t.Fatalf("session's TLS version %x", v)
			}
			var n int
			big := strings.Repeat("y", 300000)
			if err := c.QueryRow(ctx, "SELECT length($1::text)", big).Scan(&n); err != nil || n != len(big) {
				t.Fatalf("a 300 kB parameter: %d, %v", n, err)
			}
			var s string
			if err := c.QueryRow(ctx, "SELECT repeat('z', 500000)").Scan(&s); err != nil || len(s) != 500000 {
				t.Fatalf("a 500 kB value: %d bytes, %v", len(s), err)
			}
			b := &pgx.Batch{}
			for i := range 300 {
				b.Queue("SELECT $1::int + 1, $2::text", i, strings.Repeat("p", 100))
			}
			br := c.SendBatch(ctx, b)
			for i := range 300 {
				var got int
				var pad string
				if err := br.QueryRow().Scan(&got, &pad); err != nil || got != i+1 {
					t.Fatalf("batch row %d: %d, %v", i, got, err)
				}
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	// verify-full refuses a certificate it cannot verify.
	other, _ := testCert(t)
	if c, err := pgx.Connect(ctx, dsn("tlspgx", "sslmode=verify-full&sslrootcert="+other)); err == nil {
		c.Close(ctx)
		t.Fatal("verify-full accepted a certificate signed by another root")
	}
}

// TestTLSWithPsql: libpq (psql) with sslmode=require and verify-full sees
// an SSL connection; a FATAL error over TLS reaches it whole.
func TestTLSWithPsql(t *testing.T) {
	psql := psqlPath(t)
	dsn, _, root := tlsRouter(t, false)
	for _, ssl := range []string{"sslmode=require", "sslmode=verify-full&sslrootcert=" + root} {
		out, err := exec.Command(psql, dsn("tlspsql", ssl), "-X", "-A", "-t", "-c", `\conninfo`, "-c", "SELECT 40 + 2").CombinedOutput()
		if err != nil {
			t.Fatalf("psql %s: %v\n%s", ssl, err, out)
		}
		if !strings.Contains(string(out), "SSL connection (protocol: TLSv1.3") || !strings.Contains(string(out), "\n42\n") {
			t.Fatalf("psql %s:\n%s", ssl, out)
		}
	}
	wrongDB := strings.Replace(dsn("tlspsql", "sslmode=require"), "/app?", "/nosuchdb?", 1)
	out, err := exec.Command(psql, wrongDB, "-X", "-c", "SELECT 1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `database "nosuchdb" does not exist`) || strings.Contains(string(out), "SSL") {
		t.Fatalf("psql to a wrong database over TLS: %v\n%s", err, out)
	}
}

func psqlPath(t *testing.T) string {
	t.Helper()
	needCluster(t)
	for _, p := range []string{"/usr/lib/postgresql/15/bin/psql"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	return p
}

// TestTLSRequired: a plaintext session is refused with 28000 and a hint,
// libpq's sslmode=allow retries with TLS and gets in, and cancel requests
// reach a TLS session's statement over TLS (pgx encrypts them like the
// session) and over plaintext.
func TestTLSRequired(t *testing.T) {
	dsn, addr, _ := tlsRouter(t, true)
	ctx := testCtx(t)
	_, err := pgx.Connect(ctx, dsn("tlsreq", "sslmode=disable"))
	if pgCode(err) != "28000" || !strings.Contains(err.Error(), "TLS is required") || !strings.Contains(hintOf(err), "sslmode=require") {
		t.Fatalf("plaintext session: %v (hint %q)", err, hintOf(err))
	}
	out, err := exec.Command(psqlPath(t), dsn("tlsreq", "sslmode=allow"), "-X", "-A", "-t", "-c", `\conninfo`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SSL connection") {
		t.Fatalf("psql sslmode=allow: %v\n%s", err, out)
	}

	c := connectTLS(t, dsn("cancel2", "sslmode=require"))
	checkCancelWith(t, c, shardOf(t, "cancel2"), c.PgConn().CancelRequest)
	checkCancelWith(t, c, shardOf(t, "cancel2"), func(context.Context) error {
		return plaintextCancel(addr, c.PgConn().PID(), c.PgConn().SecretKey())
	})
}

// plaintextCancel sends a CancelRequest over a new unencrypted connection.
func plaintextCancel(addr string, pid uint32, key []byte) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	msg := binary.BigEndian.AppendUint32(nil, uint32(12+len(key)))
	msg = binary.BigEndian.AppendUint32(msg, codeCancel)
	msg = binary.BigEndian.AppendUint32(msg, pid)
	_, err = nc.Write(append(msg, key...))
	if err != nil {
		return err
	}
	_, err = nc.Read(make([]byte, 1)) // the router closes the connection when it has forwarded it
	if err == io.EOF {
		err = nil
	}
	return err
}

// startupPacket is a packet of the startup phase: length, code, body.
func startupPacket(code uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

// readError reads one ErrorResponse from r and returns its code and
// message.
func readError(t *testing.T, r io.Reader) (string, string) {
	t.Helper()
	fe := pgproto3.NewFrontend(r, io.Discard)
	m, err := fe.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	e, ok := m.(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("got %T, want an ErrorResponse", m)
	}
	return e.Code, e.Message
}

// TestTLSNegotiation: the edges of the startup phase. GSSENCRequest is
// declined and an SSLRequest may follow; data sent after an SSLRequest
// before the handshake is refused (CVE-2021-23214); direct TLS without
// ALPN "postgresql" is refused; a second SSLRequest is a protocol
// violation.
func TestTLSNegotiation(t *testing.T) {
	_, addr, root := tlsRouter(t, false)
	pem, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		return nc
	}
	answer := func(nc net.Conn) byte {
		var b [1]byte
		if _, err := io.ReadFull(nc, b[:]); err != nil {
			t.Fatal(err)
		}
		return b[0]
	}

	t.Run("gss then ssl", func(t *testing.T) {
		nc := dial()
		nc.Write(startupPacket(codeGSSRequest, nil))
		if a := answer(nc); a != 'N' {
			t.Fatalf("GSSENCRequest answered %q", a)
		}
		nc.Write(startupPacket(codeSSLRequest, nil))
		if a := answer(nc); a != 'S' {
			t.Fatalf("SSLRequest after GSSENCRequest answered %q", a)
		}
		tc := tls.Client(nc, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		tc.Write(startupPacket(codeSSLRequest, nil))
		if code, msg := readError(t, tc); code != codeProtocolViolation {
			t.Fatalf("SSLRequest inside TLS: %s %s", code, msg)
		}
	})
	t.Run("unencrypted data after SSLRequest", func(t *testing.T) {
		nc := dial()
		nc.Write(append(startupPacket(codeSSLRequest, nil), startupPacket(protocolV3, []byte("user\x00app\x00\x00"))...))
		if a := answer(nc); a != 'S' {
			t.Fatalf("SSLRequest answered %q", a)
		}
		if code, msg := readError(t, nc); code != codeProtocolViolation || msg != "received unencrypted data after SSL request" {
			t.Fatalf("got %s %s", code, msg)
		}
	})
	t.Run("direct TLS without ALPN", func(t *testing.T) {
		tc := tls.Client(dial(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if code, msg := readError(t, tc); code != codeProtocolViolation || !strings.Contains(msg, "ALPN") {
			t.Fatalf("got %s %s", code, msg)
		}
	})
}

// A router without TLS declines SSLRequest once; a second is refused.
func TestSSLRequestDeclinedOnce(t *testing.T) {
	needCluster(t)
	nc, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(nc)
	for i, want := range []string{"N", "E"} {
		nc.Write(startupPacket(codeSSLRequest, nil))
		b, err := r.Peek(1)
		if err != nil || string(b) != want {
			t.Fatalf("SSLRequest %d answered %q, %v; want %q", i+1, b, err, want)
		}
		if want == "N" {
			r.Discard(1)
		}
	}
	if code, _ := readError(t, r); code != codeProtocolViolation {
		t.Fatalf("second SSLRequest: %s", code)
	}
}

// recordingDialer records the bytes a pgx connection sends and receives.
type recordingDialer struct {
	mu   sync.Mutex
	wire bytes.Buffer
}

type recordedConn struct {
	net.Conn
	d *recordingDialer
}

func (c recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.d.mu.Lock()
	c.d.wire.Write(p[:n])
	c.d.mu.Unlock()
	return n, err
}

func (c recordedConn) Write(p []byte) (int, error) {
	c.d.mu.Lock()
	c.d.wire.Write(p)
	c.d.mu.Unlock()
	return c.Conn.Write(p)
}

func (d *recordingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return recordedConn{Conn: nc, d: d}, nil
}

// TestTLSWireIsEncrypted: neither a query nor its result cross the wire
// in the clear over TLS; the same session without TLS shows both (which
// shows the recording works).
func TestTLSWireIsEncrypted(t *testing.T) {
	dsn, _, _ := tlsRouter(t, false)
	ctx := testCtx(t)
	for _, tc := range []struct {
		ssl   string
		plain bool
	}{{"sslmode=require", false}, {"sslmode=disable", true}} {
		cfg, err := pgx.ParseConfig(dsn("tlswire", tc.ssl))
		if err != nil {
			t.Fatal(err)
		}
		d := &recordingDialer{}
		cfg.DialFunc = d.dial
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := c.QueryRow(ctx, "SELECT 'query-secret' || ' and ' || upper('result-secret')").Scan(&s); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		d.mu.Lock()
		wire := d.wire.Bytes()
		sent, got := bytes.Contains(wire, []byte("query-secret")), bytes.Contains(wire, []byte("RESULT-SECRET"))
		d.mu.Unlock()
		if sent != tc.plain || got != tc.plain {
			t.Errorf("%s: query in the clear %v, result in the clear %v", tc.ssl, sent, got)
		}
	}
}

// TestTLSCopyAndListen: the session paths that ask whether the client has
// sent more (COPY FROM with a notice per row; an idle pinned session)
// see what TLS buffers.
func TestTLSCopyAndListen(t *testing.T) {
	// noisy's table without a tenant column: no test's schema apply puts
	// row-level security on it, under which COPY FROM is refused.
	applySchema(t, strings.NewReplacer("noisy", "tlsnoisy", "tenant_id", "owner").Replace(noisyCopySchema))
	dsn, _, _ := tlsRouter(t, false)
	ctx := testCtx(t)
	notices := 0
	cfg, err := pgx.ParseConfig(dsn("noisytls", "sslmode=require"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(*pgconn.PgConn, *pgconn.Notice) { notices++ }
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "DELETE FROM tlsnoisy WHERE owner = 'noisytls'"); err != nil {
		t.Fatal(err)
	}
	const rows = 20000
	src := make([][]any, rows)
	for i := range src {
		src[i] = []any{"noisytls", i, "p"}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"tlsnoisy"}, []string{"owner", "n", "pad"}, pgx.CopyFromRows(src))
	if err != nil || n != rows || notices != rows {
		t.Fatalf("CopyFrom over TLS: %d rows, %d notices, %v", n, notices, err)
	}

	l := connectTLS(t, dsn("pintls", "sslmode=require"))
	if _, err := l.Exec(ctx, "LISTEN tlsjobs"); err != nil {
		t.Fatal(err)
	}
	o := connectTLS(t, dsn("pintls", "sslmode=require"))
	if _, err := o.Exec(ctx, "SELECT pg_notify('tlsjobs', 'one')"); err != nil {
		t.Fatal(err)
	}
	if n, err := l.WaitForNotification(ctx); err != nil || n.Payload != "one" {
		t.Fatalf("notification over TLS: %v, %v", n, err)
	}
	b := &pgx.Batch{}
	for i := range 200 {
		b.Queue("SELECT $1::int, $2::text", i, strings.Repeat("q", 200)) // 40 kB: several records in one write
	}
	if err := l.SendBatch(ctx, b).Close(); err != nil {
		t.Fatalf("batch on a pinned TLS session: %v", err)
	}
}

// TestCertFilesReload: new handshakes get the pair read by Reload; a
// failed reload keeps the old one.
func TestCertFilesReload(t *testing.T) {
	certFile, files := testCert(t)
	keyFile := strings.TrimSuffix(certFile, ".crt") + ".key"
	first := files.cur.Load().Leaf.SerialNumber
	certPEM, keyPEM, err := tlscert.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	if err := files.Reload(); err != nil {
		t.Fatal(err)
	}
	got, _ := files.GetCertificate(nil)
	if got.Leaf.SerialNumber.Cmp(first) == 0 {
		t.Fatal("Reload kept the old certificate")
	}
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	if err := files.Reload(); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("reload of a broken key: %v", err)
	}
	if now, _ := files.GetCertificate(nil); now != got {
		t.Fatal("a failed reload replaced the certificate")
	}
}

// TestTLSConfigValidate: the settings the router refuses.
func TestTLSConfigValidate(t *testing.T) {
	_, files := testCert(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"required without TLS", Config{TLSRequired: true}, "TLSRequired needs TLS"},
		{"TLS 1.1", Config{TLS: &tls.Config{MinVersion: tls.VersionTLS11, GetCertificate: files.GetCertificate}}, "below TLS 1.2"},
		{"no certificate", Config{TLS: &tls.Config{}}, "no certificate"},
	} {
		tc.cfg.Placement, tc.cfg.Auth = env.watcher, AuthTrust
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg := serverTLSConfig(files.Config())
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "postgresql" || cfg.CipherSuites != nil {
		t.Fatalf("server TLS config: min %x, ALPN %v, suites %v", cfg.MinVersion, cfg.NextProtos, cfg.CipherSuites)
	}
}

// TestTLSWithPsycopg2: Python's psycopg2 (libpq underneath) with
// sslmode=require and verify-full. Skipped without python3-psycopg2.
func TestTLSWithPsycopg2(t *testing.T) {
	needCluster(t)
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} { // Debian's first: another python3 on PATH may lack it
		if p, err := exec.LookPath(p); err == nil && exec.Command(p, "-c", "import psycopg2").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("python3 with psycopg2 is not installed (Debian: apt-get install python3-psycopg2)")
	}
	dsn, _, root := tlsRouter(t, true)
	const script = `import sys, psycopg2
c = psycopg2.connect(sys.argv[1])
cur = c.cursor()
cur.execute("SELECT 40 + 2")
print(cur.fetchone()[0], c.info.ssl_in_use, c.info.ssl_attribute("protocol"))
`
	for _, ssl := range []string{"sslmode=require", "sslmode=verify-full&sslrootcert=" + root} {
		ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Second)
		out, err := exec.CommandContext(ctx, py, "-c", script, dsn("tlspy", ssl)).CombinedOutput()
		cancel()
		if err != nil || !strings.HasPrefix(string(out), "42 True TLSv1.") {
			t.Fatalf("psycopg2 %s: %v\n%s", ssl, err, out)
		}
	}
}

// TestTLSWithJDBC: PgJDBC with sslmode=require and verify-full (the
// router's certificate as sslrootcert). Skipped without java and
// Debian's libpostgresql-jdbc-java.
func TestTLSWithJDBC(t *testing.T) {
	needCluster(t)
	const jar = "/usr/share/java/postgresql.jar"
	java, err := exec.LookPath("java")
	if err == nil {
		_, err = os.Stat(jar)
	}
	if err != nil {
		t.Skip("java or PgJDBC is not installed (Debian: apt-get install default-jre-headless libpostgresql-jdbc-java)")
	}
	_, addr, root := tlsRouter(t, true)
	src := filepath.Join(t.TempDir(), "TLSCheck.java")
	const program = `import java.sql.*;
public class TLSCheck {
	public static void main(String[] args) throws Exception {
		try (Connection c = DriverManager.getConnection(args[0])) {
			ResultSet r = c.createStatement().executeQuery("SELECT 40 + 2");
			r.next();
			System.out.println("answer " + r.getInt(1));
		}
	}
}
`
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ssl := range []string{"sslmode=require", "sslmode=verify-full&sslrootcert=" + root} {
		url := fmt.Sprintf("jdbc:postgresql://%s/app?user=app&%s&options=-c%%20shardline.tenant%%3Dtlsjdbc", addr, ssl)
		out, err := exec.Command(java, "-cp", jar, src, url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "answer 42") {
			t.Fatalf("JDBC %s: %v\n%s", ssl, err, out)
		}
	}
	// And refused without TLS, with the router's message.
	out, err := exec.Command(java, "-cp", jar, src, fmt.Sprintf("jdbc:postgresql://%s/app?user=app&sslmode=disable", addr)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TLS is required") {
		t.Fatalf("JDBC without TLS: %v\n%s", err, out)
	}
}
