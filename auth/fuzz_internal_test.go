package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// FuzzClientFirst: a client-first-message built from fields parses back to
// them; any input either parses or fails with ErrMalformed, and what parses
// has a bare part that is the message's tail.
func FuzzClientFirst(f *testing.F) {
	f.Add(byte('n'), "", "", "user", "rOprNGfwEbeRWgbNEkqO", "")
	f.Add(byte('y'), "", "adm=in", "a,b", "x", "e=1")
	f.Add(byte('p'), "tls-server-end-point", "", "", "n0nce", "")
	f.Fuzz(func(t *testing.T, flag byte, cbName, authzid, user, nonce, ext string) {
		var gs2 string
		switch flag % 3 {
		case 0:
			gs2 = "n,"
		case 1:
			gs2 = "y,"
		default:
			gs2 = "p=" + cbName + ","
		}
		if authzid != "" {
			gs2 += "a=" + escapeName(authzid)
		}
		gs2 += ","
		if ext != "" {
			ext = "," + ext
		}
		msg := gs2 + "n=" + escapeName(user) + ",r=" + nonce + ext
		wellFormed := validNonce(nonce) && (flag%3 != 2 || validCBName(cbName)) && (ext == "" || checkExtensions(ext[1:]) == nil)
		cf, err := parseClientFirst(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseClientFirst(%q) error %v does not wrap ErrMalformed", msg, err)
			}
			if wellFormed {
				t.Fatalf("parseClientFirst(%q) refused a well-formed message: %v", msg, err)
			}
			return
		}
		if !wellFormed {
			return // a field held a separator: the parts differ, and that is fine
		}
		if cf.gs2 != gs2 || cf.user != user || cf.nonce != nonce || cf.authzid != authzid || cf.bare != msg[len(gs2):] {
			t.Fatalf("parseClientFirst(%q) = %+v", msg, cf)
		}
		if flag%3 == 2 && cf.cbName != cbName {
			t.Fatalf("cbName = %q, want %q", cf.cbName, cbName)
		}
	})
}

// FuzzClientFinal: a client-final-message built from fields parses back to
// them; garbage fails with ErrMalformed.
func FuzzClientFinal(f *testing.F) {
	f.Add([]byte("n,,"), "abc", "x=1", []byte("0123456789abcdef0123456789abcdef"))
	f.Add([]byte(""), "", "", []byte(""))
	f.Fuzz(func(t *testing.T, cbind []byte, nonce, ext string, proof []byte) {
		b64 := base64.StdEncoding.EncodeToString
		if ext != "" {
			ext = "," + ext
		}
		msg := "c=" + b64(cbind) + ",r=" + nonce + ext + ",p=" + b64(proof)
		wellFormed := validNonce(nonce) && (ext == "" || checkExtensions(ext[1:]) == nil)
		cf, err := parseClientFinal(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseClientFinal(%q) error %v does not wrap ErrMalformed", msg, err)
			}
			if wellFormed {
				t.Fatalf("parseClientFinal(%q) refused a well-formed message: %v", msg, err)
			}
			return
		}
		if !wellFormed {
			return
		}
		if string(cf.cbind) != string(cbind) || cf.nonce != nonce || string(cf.proof) != string(proof) ||
			cf.withoutProof != msg[:strings.LastIndexByte(msg, ',')] {
			t.Fatalf("parseClientFinal(%q) = %+v", msg, cf)
		}
	})
}

// FuzzExchange: whatever a client sends, an exchange against a verifier of
// a password the client does not know never succeeds, and errors are
// ErrMalformed or ErrFailed.
func FuzzExchange(f *testing.F) {
	f.Add([]byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add([]byte("y,,n=u,r=x"), []byte("c=eSws,r=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	v, err := ComputeVerifier("the password", []byte("fixed salt"), 4096)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, final []byte) {
		e := NewExchange(v)
		e.serverNonce = func() (string, error) { return "", nil } // the client can then know the whole nonce
		if _, err := e.ServerFirst(first); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ServerFirst error %v", err)
			}
			return
		}
		_, err := e.ServerFinal(final)
		if err == nil {
			t.Fatalf("authenticated without the password: first %q final %q", first, final)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFailed) {
			t.Fatalf("ServerFinal error %v", err)
		}
	})
}
