package netloop

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testTLS returns a server configuration with a fresh self-signed
// certificate for 127.0.0.1 and a client configuration that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netloop test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	return server, client
}

// tlsEcho starts TLS after a "tls\n" line and then answers lines as echo
// does; handshake errors go to errs.
func tlsEcho(cfg *tls.Config, errs chan<- error) func(*Task, *Conn) {
	return func(task *Task, c *Conn) {
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != "tls\n" {
			return
		}
		if err := c.StartTLS(task, cfg, nil); err != nil {
			if errs != nil {
				errs <- err
			}
			return
		}
		echo(task, c)
	}
}

// dialTLS connects, asks for TLS and runs the client handshake.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write([]byte("tls\n")); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}

// TLS sessions on one loop: many at once, each with lines that fit one
// record and some that span many.
func TestTLSEcho(t *testing.T) { forModes(t, testTLSEcho) }

func testTLSEcho(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	scfg, ccfg := testTLS(t)
	addr := serve(t, l, tlsEcho(scfg, nil))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc := dialTLS(t, addr, ccfg)
			r := bufio.NewReader(tc)
			for j, n := range []int{1, 100, 20000, 300000, 5} {
				line := strings.Repeat(string(rune('a'+(i+j)%26)), n) + "\n"
				if _, err := tc.Write([]byte(line)); err != nil {
					t.Error(err)
					return
				}
				got, err := r.ReadString('\n')
				if err != nil || got != strings.ToUpper(line) {
					t.Errorf("client %d line %d (%d bytes): got %d bytes, %v", i, j, n, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// flushConn buffers writes until Flush, or until a read: records written
// one by one reach the server in one segment.
type flushConn struct {
	net.Conn
	buf bytes.Buffer
}

func (f *flushConn) Write(p []byte) (int, error) { return f.buf.Write(p) }
func (f *flushConn) Read(p []byte) (int, error) {
	if err := f.Flush(); err != nil {
		return 0, err
	}
	return f.Conn.Read(p)
}
func (f *flushConn) Flush() error {
	if f.buf.Len() == 0 {
		return nil
	}
	_, err := f.Conn.Write(f.buf.Bytes())
	f.buf.Reset()
	return err
}

// Ready sees what TLS holds: the rest of a record the reader took part
// of, and a record read from the socket with the one before it, while the
// socket itself has nothing. A readiness check of the socket alone says
// no to both, and a session that then waits for the socket never wakes.
func TestTLSReadySeesBuffered(t *testing.T) { forModes(t, testTLSReadySeesBuffered) }

func testTLSReadySeesBuffered(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	scfg, ccfg := testTLS(t)
	type report struct {
		step string
		ok   bool
	}
	reports := make(chan report, 16)
	addr := serve(t, l, func(task *Task, c *Conn) {
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		if err := c.StartTLS(task, scfg, nil); err != nil {
			reports <- report{"handshake: " + err.Error(), false}
			return
		}
		// One record "ab": read "a"; "b" is in TLS only.
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil || one[0] != 'a' {
			reports <- report{"read a", false}
			return
		}
		reports <- report{"rest of a record is ready", c.Ready()}
		if _, err := io.ReadFull(c, one[:]); err != nil || one[0] != 'b' {
			reports <- report{"read b", false}
			return
		}
		reports <- report{"nothing is ready after the record", !c.Ready()}
		// Two records "cd" and "e" in one segment: reading the first
		// takes both from the socket.
		if err := task.WaitReadable(c); err != nil {
			reports <- report{"wait: " + err.Error(), false}
			return
		}
		var two [2]byte
		if _, err := io.ReadFull(c, two[:]); err != nil || string(two[:]) != "cd" {
			reports <- report{"read cd: " + string(two[:]), false}
			return
		}
		reports <- report{"second record of the segment is ready", c.Ready()}
		if _, err := io.ReadFull(c, one[:]); err != nil || one[0] != 'e' {
			reports <- report{"read e", false}
			return
		}
		c.Write([]byte("done"))
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("tls\n"))
	fc := &flushConn{Conn: nc}
	tc := tls.Client(fc, ccfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tc.Write([]byte("ab"))
	fc.Flush()
	for _, want := range []string{"rest of a record is ready", "nothing is ready after the record"} {
		if r := <-reports; r.step != want || !r.ok {
			t.Fatalf("%s: %v (want %s)", r.step, r.ok, want)
		}
	}
	tc.Write([]byte("cd"))
	tc.Write([]byte("e"))
	fc.Flush()
	if r := <-reports; r.step != "second record of the segment is ready" || !r.ok {
		t.Fatalf("%s: %v", r.step, r.ok)
	}
	var b [4]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil || string(b[:]) != "done" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// A client that is no TLS client fails the handshake; the loop goes on
// serving others.
func TestTLSHandshakeFailure(t *testing.T) { forModes(t, testTLSHandshakeFailure) }

func testTLSHandshakeFailure(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	scfg, ccfg := testTLS(t)
	errs := make(chan error, 1)
	addr := serve(t, l, tlsEcho(scfg, errs))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("tls\nGET / HTTP/1.0\r\n\r\n"))
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("handshake of a plaintext client: %v, want a TLS error", err)
	}
	tc := dialTLS(t, addr, ccfg)
	tc.Write([]byte("ok\n"))
	if got, err := bufio.NewReader(tc).ReadString('\n'); err != nil || got != "OK\n" {
		t.Fatalf("after a failed handshake: %q, %v", got, err)
	}
}

// Close ends a handshake that waits for a silent client at once, not
// after pollTimeout.
func TestTLSCloseDuringHandshake(t *testing.T) { forModes(t, testTLSCloseDuringHandshake) }

func testTLSCloseDuringHandshake(t *testing.T, cfg Config) {
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := run(l)
	scfg, _ := testTLS(t)
	errs := make(chan error, 1)
	started := make(chan struct{})
	addr := serve(t, l, func(task *Task, c *Conn) {
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		close(started)
		errs <- c.StartTLS(task, scfg, nil)
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("tls\n")) // and no ClientHello
	<-started
	begin := time.Now()
	l.Close()
	<-done
	if took := time.Since(begin); took >= pollTimeout/2 {
		t.Fatalf("Run returned %v after Close, with a handshake waiting", took)
	}
	if err := <-errs; err == nil {
		t.Fatal("the handshake cut off by Close succeeded")
	}
}

// The bytes on the wire are not the plaintext.
func TestTLSWireIsEncrypted(t *testing.T) { forModes(t, testTLSWireIsEncrypted) }

type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	written bytes.Buffer
	read    bytes.Buffer
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.written.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.read.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func testTLSWireIsEncrypted(t *testing.T, cfg Config) {
	l := startLoop(t, cfg)
	scfg, ccfg := testTLS(t)
	addr := serve(t, l, tlsEcho(scfg, nil))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("tls\n"))
	rc := &recordingConn{Conn: nc}
	tc := tls.Client(rc, ccfg)
	secret := "the quick brown fox jumps over the lazy dog"
	tc.Write([]byte(secret + "\n"))
	got, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || got != strings.ToUpper(secret)+"\n" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, w := range []struct {
		dir  string
		wire []byte
		text string
	}{{"sent", rc.written.Bytes(), secret}, {"received", rc.read.Bytes(), strings.ToUpper(secret)}} {
		if bytes.Contains(bytes.ToLower(w.wire), []byte("quick brown")) {
			t.Errorf("the %s bytes carry the plaintext", w.dir)
		}
		if len(w.wire) < len(w.text) {
			t.Errorf("%s only %d bytes", w.dir, len(w.wire))
		}
	}
}
