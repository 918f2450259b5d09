package router

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/netloop"
)

// FuzzStartupNegotiation feeds the startup phase of a router that requires
// TLS arbitrary bytes over a real TCP connection (which then ends) and
// checks: it returns, never with a session for a client that did not
// complete a handshake (no fuzzed input can); it answers only 'N' and
// 'S', each encryption request at most once; whatever follows plaintext
// answers is at most one ErrorResponse, and a client that began with a
// ClientHello gets TLS records only.
func FuzzStartupNegotiation(f *testing.F) {
	ssl, gss := startupPacket(codeSSLRequest, nil), startupPacket(codeGSSRequest, nil)
	login := startupPacket(protocolV3, []byte("user\x00app\x00database\x00app\x00\x00"))
	cancel := startupPacket(codeCancel, []byte{0, 0, 0, 1, 0, 0, 0, 2})
	cat := func(ps ...[]byte) []byte {
		var b []byte
		for _, p := range ps {
			b = append(b, p...)
		}
		return b
	}
	f.Add(login)
	f.Add(cat(ssl, login))
	f.Add(cat(gss, ssl))
	f.Add(cat(gss, gss, login))
	f.Add(cat(ssl, ssl))
	f.Add(cancel)
	f.Add(cat(gss, cancel))
	f.Add([]byte{0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 4})
	f.Add(cat(ssl, []byte{0x16, 3, 3, 0, 1, 1}))

	_, files := testCert(f)
	cfg := Config{TLS: files.Config(), TLSRequired: true, Logger: slog.New(slog.DiscardHandler)}
	r := &Router{cfg: cfg, log: cfg.Logger, tls: newTLSServer(&cfg)}
	l, err := netloop.New(netloop.Config{})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); l.Run() }()
	f.Cleanup(func() { l.Close(); <-done })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })

	type result struct {
		st  *startup
		err error
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c, err := netloop.Wrap(sc)
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan result, 1)
		l.Go(func(task *netloop.Task) {
			c.Attach(task)
			defer c.Close()
			st, err := r.readStartup(task, c, bufio.NewReaderSize(c, clientReadBuffer))
			var re *Error
			if errors.As(err, &re) {
				_, _ = c.Write(errorResponse(re))
			}
			res <- result{st, err}
		})
		_ = client.SetDeadline(time.Now().Add(20 * time.Second))
		client.Write(in)
		client.(*net.TCPConn).CloseWrite()
		var got result
		select {
		case got = <-res:
		case <-time.After(20 * time.Second):
			t.Fatalf("startup of %q did not return", in)
		}
		if got.st != nil {
			t.Fatalf("startup of %q let a session in without TLS: %+v", in, got.st)
		}
		out, _ := io.ReadAll(client)
		if len(in) > 0 && in[0] == tlsRecordHandshake {
			// Direct TLS: what comes back is TLS records (an alert for a
			// broken ClientHello), never plaintext.
			if len(out) > 0 && out[0] != 0x15 && out[0] != 0x16 {
				t.Fatalf("direct TLS %q got %q", in, out)
			}
			return
		}
		answers := map[byte]int{}
		for len(out) > 0 && (out[0] == 'N' || out[0] == 'S') {
			answers[out[0]]++
			out = out[1:]
		}
		if answers['S'] > 1 || answers['N'] > 2 {
			t.Fatalf("startup of %q answered %v", in, answers)
		}
		if len(out) > 0 && answers['S'] == 0 {
			// Plaintext: one ErrorResponse ('E', length, body) and nothing
			// after it.
			if out[0] != 'E' || len(out) < 5 || int(out[1])<<24|int(out[2])<<16|int(out[3])<<8|int(out[4]) != len(out)-1 {
				t.Fatalf("startup of %q: after the answers %q", in, out)
			}
		}
	})
}
