package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline/internal/tlscert"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// up --tls's pair: made once with the key 0600 and the SANs clients
// verify, kept by later runs, made again when it is about to expire.
func TestSelfSignedPair(t *testing.T) {
	dir := t.TempDir()
	cert, key, made, err := ensureSelfSigned(dir)
	if err != nil || !made {
		t.Fatalf("first run: made %v, %v", made, err)
	}
	if cert != filepath.Join(dir, "tls", "server.crt") || key != filepath.Join(dir, "tls", "server.key") {
		t.Fatalf("files %s %s", cert, key)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v", st.Mode(), err)
	}
	leaf := parseCert(t, cert)
	host, _ := os.Hostname()
	for _, name := range []string{"localhost", host} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate for %q: %v", name, err)
		}
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	before, _ := os.ReadFile(cert)
	if _, _, made, err := ensureSelfSigned(dir); err != nil || made {
		t.Fatalf("second run: made %v, %v", made, err)
	}
	if after, _ := os.ReadFile(cert); !bytes.Equal(before, after) {
		t.Fatal("second run changed the certificate")
	}
	soon, soonKey, err := tlscert.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cert, soon, 0o644)
	os.WriteFile(key, soonKey, 0o600)
	if _, _, made, err := ensureSelfSigned(dir); err != nil || !made {
		t.Fatalf("a certificate that expires within the hour: made %v, %v", made, err)
	}
}

func parseCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Incomplete or unreadable TLS flags: exit 2 and one line, before
// anything is started.
func TestTLSFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pem")
	for _, args := range [][]string{
		{"up", "--tls-cert", missing},
		{"up", "--tls-required"},
		{"router", "--tls-key", missing},
		{"router", "--tls-required"},
		{"router", "--tls-cert", missing, "--tls-key", missing},
	} {
		dir := filepath.Join(t.TempDir(), "cluster")
		if args[0] == "up" {
			args = append(args, "--dir", dir)
		}
		r := runCLI(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--tls-") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line naming the flag", args, r.code, r.stderr)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q: cluster directory created (%v)", args, err)
		}
	}
}

// TestUpTLS: up --tls --tls-required prints a connection string that
// verifies the self-signed certificate (pgx and psql), refuses plaintext,
// and serves a new certificate after SIGHUP.
func TestUpTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	var out bytes.Buffer
	info, _ := startUpWith(t, dir, 1, 0, func(c *upCommand) {
		c.SelfSigned, c.TLSRequired, c.Stdout = true, true, &out
	})
	root := filepath.Join(dir, "tls", "server.crt")
	if !strings.Contains(info.RouterDSN, "sslmode=verify-full&sslrootcert="+root) {
		t.Fatalf("RouterDSN %s does not verify %s", info.RouterDSN, root)
	}
	if !strings.Contains(out.String(), "sslrootcert="+root) {
		t.Fatalf("up does not say how to verify the certificate:\n%s", out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := info.RouterDSN + "&options=-c%20shardline.tenant%3Dacme"
	serial := func(dsn string) string {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
		tc, ok := c.PgConn().Conn().(*tls.Conn)
		if !ok {
			t.Fatal("the session is not TLS")
		}
		return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial(dsn)

	plain := strings.Replace(dsn, "sslmode=verify-full", "sslmode=disable", 1)
	_, err := pgx.Connect(ctx, plain)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "TLS is required") {
		t.Fatalf("plaintext session: %v", err)
	}
	if psql, err := exec.LookPath("psql"); err == nil {
		got, err := exec.CommandContext(ctx, psql, dsn, "-X", "-A", "-t", "-c", `\conninfo`).CombinedOutput()
		if err != nil || !strings.Contains(string(got), "SSL connection") {
			t.Fatalf("psql with up's connection string: %v\n%s", err, got)
		}
	}

	// A new pair in place, then SIGHUP: new sessions get it.
	certPEM, keyPEM, err := tlscert.SelfSigned([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "tls", "server.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(root, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Until the reload, the router serves the old pair, which the new root
	// does not verify: poll without verification, then verify.
	deadline := time.Now().Add(10 * time.Second)
	for serial(strings.Replace(dsn, "sslmode=verify-full", "sslmode=require", 1)) == first {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the certificate")
		}
		time.Sleep(10 * time.Millisecond) // the reload runs on the signal's goroutine
	}
	serial(dsn)
}
