package router

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/auth"
)

// mapUsers is a UserSource over a fixed map (the watcher's job is tested
// with etcd; here the exchange on the wire is).
type mapUsers map[string]shardline.User

func (m mapUsers) Lookup(name string) (shardline.User, bool) { u, ok := m[name]; return u, ok }

// FuzzSCRAMWire: whatever a client sends in its two SASL messages, for a
// user that exists and one that does not, the router never sends
// AuthenticationOk; it answers with SASLContinue or an ErrorResponse of
// 28P01 or 08P01, and then closes.
func FuzzSCRAMWire(f *testing.F) {
	v, err := auth.NewVerifier("secret", 0)
	if err != nil {
		f.Fatal(err)
	}
	r, err := New(Config{Placement: staticPlacement{}, Users: mapUsers{"u": {Name: "u", Kind: shardline.UserApp, Verifier: v.String()}}})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ln) }()
	f.Cleanup(func() {
		r.Close()
		<-done
	})
	addr := ln.Addr().String()

	f.Add(true, []byte("SCRAM-SHA-256"), []byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add(false, []byte("SCRAM-SHA-256"), []byte("n,,n=,r=abc"), []byte("c=biws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add(true, []byte("SCRAM-SHA-256-PLUS"), []byte("p=tls-server-end-point,,n=,r=x"), []byte(""))
	f.Add(true, []byte("SCRAM-SHA-256"), []byte("y,,n=u,r=x"), []byte("c=eSws,r=x"))
	f.Add(true, []byte("MD5"), []byte(""), []byte(""))
	f.Fuzz(func(t *testing.T, known bool, mech, first, final []byte) {
		if len(first) > 1000 || len(final) > 1000 || len(mech) > 100 {
			return
		}
		user := "ghost"
		if known {
			user = "u"
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		body := append(binary.BigEndian.AppendUint32(nil, protocolV3), "user\x00"+user+"\x00database\x00app\x00\x00"...)
		if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		typ, msg := readMessage(t, br)
		if typ != 'R' || binary.BigEndian.Uint32(msg) != 10 {
			t.Fatalf("first answer %q %q, want AuthenticationSASL", typ, msg)
		}
		var p []byte
		p = append(append(p, mech...), 0)
		p = binary.BigEndian.AppendUint32(p, uint32(len(first)))
		writeMessage(t, c, 'p', append(p, first...))
		for step := 0; ; step++ {
			typ, msg = readMessage(t, br)
			if typ == 0 {
				t.Fatal("the router closed without an ErrorResponse")
			}
			if typ == 'E' {
				code := string(errorField(msg, 'C'))
				if code != codeInvalidPassword && code != codeProtocolViolation {
					t.Fatalf("error %s %q", code, errorField(msg, 'M'))
				}
				if _, err := br.ReadByte(); err != io.EOF {
					t.Fatalf("the connection stayed open after the error (%v)", err)
				}
				return
			}
			if typ != 'R' || len(msg) < 4 || binary.BigEndian.Uint32(msg) != 11 || step > 0 {
				t.Fatalf("answer %q %q: want SASLContinue once, then an error", typ, msg)
			}
			writeMessage(t, c, 'p', final)
		}
	})
}

func writeMessage(t *testing.T, w io.Writer, typ byte, body []byte) {
	t.Helper()
	b := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...)
	if _, err := w.Write(append(b, body...)); err != nil {
		t.Fatal(err)
	}
}

// readMessage reads one server message; type 0 at EOF.
func readMessage(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil
		}
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return hdr[0], body
}
