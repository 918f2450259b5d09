package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// testClient is the client side of SCRAM-SHA-256, written from RFC 5802 for
// the tests: it builds the messages a driver sends.
type testClient struct {
	password  string
	nonce     string
	gs2       string
	firstBare string
	authMsg   string
	salted    []byte
}

func newTestClient(user, password, nonce string) *testClient {
	return &testClient{password: password, nonce: nonce, gs2: "n,,", firstBare: "n=" + escapeName(user) + ",r=" + nonce}
}

func (c *testClient) first() []byte { return []byte(c.gs2 + c.firstBare) }

// final answers serverFirst; extensions go between the nonce and the proof.
func (c *testClient) final(t testing.TB, serverFirst []byte, extensions string) []byte {
	t.Helper()
	attrs := map[string]string{}
	for _, a := range strings.Split(string(serverFirst), ",") {
		attrs[a[:1]] = a[2:]
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		t.Fatal(err)
	}
	var iter int
	for _, d := range attrs["i"] {
		iter = iter*10 + int(d-'0')
	}
	salted := pbkdf2Key(t, c.password, salt, iter)
	c.salted = salted
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + attrs["r"] + extensions
	c.authMsg = c.firstBare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacSum(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := hmacSum(stored[:], c.authMsg)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

// serverSignatureOK checks the server-final-message, as a client must.
func (c *testClient) serverSignatureOK(serverFinal []byte) bool {
	want := "v=" + base64.StdEncoding.EncodeToString(hmacSum(hmacSum(c.salted, "Server Key"), c.authMsg))
	return hmac.Equal([]byte(want), serverFinal)
}

// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
func TestRFC7677Example(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := ComputeVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	e := NewExchange(v)
	e.serverNonce = func() (string, error) { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", nil }
	sf, err := e.ServerFirst([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(sf) != want {
		t.Fatalf("server-first = %q, want %q", sf, want)
	}
	fin, err := e.ServerFinal([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(fin) != want {
		t.Fatalf("server-final = %q, want %q", fin, want)
	}
}

func TestExchangeRightAndWrongPassword(t *testing.T) {
	v, err := NewVerifier("s3cret pass", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		password, ext string
		wantErr       error
	}{
		{"s3cret pass", "", nil},
		{"s3cret pass", ",x=ignored,y=also", nil},
		{"s3cret pasS", "", ErrFailed},
		{"", "", ErrFailed},
	} {
		e := NewExchange(v)
		c := newTestClient("ignored,=name", tc.password, "clientnonce123")
		sf, err := e.ServerFirst(c.first())
		if err != nil {
			t.Fatal(err)
		}
		if tc.password == "" {
			c.password = "x" // a wrong one: ComputeVerifier refuses empty passwords
		}
		fin, err := e.ServerFinal(c.final(t, sf, tc.ext))
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("password %q: ServerFinal error = %v, want %v", tc.password, err, tc.wantErr)
		}
		if err == nil && !c.serverSignatureOK(fin) {
			t.Fatalf("password %q: the server's signature does not verify", tc.password)
		}
	}
}

// An unknown user's exchange looks like a real one (a stable salt per name,
// 4096 iterations) and fails even with a proof made for its mock verifier.
func TestFailingExchange(t *testing.T) {
	secret := []byte("router secret")
	first := func(user string) string {
		sf, err := NewFailingExchange(secret, user).ServerFirst(newTestClient("", "x", "abc").first())
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(sf), ",")
		return rest // s=...,i=...
	}
	if a, b := first("ghost"), first("ghost"); a != b {
		t.Fatalf("salts differ between attempts for one name: %q, %q", a, b)
	}
	if a, b := first("ghost"), first("phantom"); a == b {
		t.Fatalf("two names share a salt: %q", a)
	}
	e := NewFailingExchange(secret, "ghost")
	c := newTestClient("", "x", "abc")
	sf, err := e.ServerFirst(c.first())
	if err != nil {
		t.Fatal(err)
	}
	// Even a proof that matches the exchange's keys is refused.
	if e.v, err = ComputeVerifier("x", e.v.Salt, e.v.Iterations); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ServerFinal(c.final(t, sf, "")); !errors.Is(err, ErrFailed) {
		t.Fatalf("ServerFinal = %v, want ErrFailed", err)
	}
}

func TestExchangeRefuses(t *testing.T) {
	v, err := NewVerifier("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, first := range []string{
		"", "n", "n,", "x,,n=,r=abc", "p,,n=,r=abc", "p=,,n=,r=abc",
		"p=tls-server-end-point,,n=,r=abc", // channel binding not offered
		"n,a=admin,n=,r=abc",               // authzid
		"n,,m=ext,n=,r=abc",                // mandatory extension
		"n,,n=,r=", "n,,n=,r=a b", "n,,r=abc", "n,,n=a=2x,r=abc", "n,,n=,r=abc,bad",
	} {
		if _, err := NewExchange(v).ServerFirst([]byte(first)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ServerFirst(%q) = %v, want ErrMalformed", first, err)
		}
	}
	c := newTestClient("", "pw", "abc")
	e := NewExchange(v)
	sf, err := e.ServerFirst(c.first())
	if err != nil {
		t.Fatal(err)
	}
	good := string(c.final(t, sf, ""))
	for name, final := range map[string]string{
		"other nonce":   strings.Replace(good, "r=abc", "r=abd", 1),
		"other binding": strings.Replace(good, "c=biws", "c=eSws", 1), // "y,,"
		"no proof":      good[:strings.LastIndexByte(good, ',')],
		"short proof":   good[:strings.LastIndexByte(good, ',')] + ",p=AAAA",
		"not base64":    good[:strings.LastIndexByte(good, ',')] + ",p=!!",
	} {
		e := NewExchange(v)
		e.serverNonce = func() (string, error) { return strings.TrimPrefix(strings.SplitN(string(sf), ",", 2)[0], "r=abc"), nil }
		if _, err := e.ServerFirst(c.first()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ServerFinal([]byte(final)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ServerFinal = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := NewExchange(v).ServerFinal([]byte(good)); !errors.Is(err, ErrMalformed) {
		t.Errorf("ServerFinal before ServerFirst = %v, want ErrMalformed", err)
	}
}

// BenchmarkExchange is the server's whole share of a login: both messages
// parsed and answered, no PBKDF2 (the client runs that).
func BenchmarkExchange(b *testing.B) {
	v, err := ComputeVerifier("pencil", []byte("0123456789abcdef"), 4096)
	if err != nil {
		b.Fatal(err)
	}
	c := newTestClient("", "pencil", "rOprNGfwEbeRWgbNEkqO")
	e := NewExchange(v)
	e.serverNonce = func() (string, error) { return "fixed", nil }
	sf, err := e.ServerFirst(c.first())
	if err != nil {
		b.Fatal(err)
	}
	final := c.final(b, sf, "")
	b.ReportAllocs()
	for b.Loop() {
		e := NewExchange(v)
		e.serverNonce = func() (string, error) { return "fixed", nil }
		if _, err := e.ServerFirst(c.first()); err != nil {
			b.Fatal(err)
		}
		if _, err := e.ServerFinal(final); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientKey is what each client pays per login: PBKDF2 with the
// verifier's 4096 iterations.
func BenchmarkClientKey(b *testing.B) {
	for b.Loop() {
		pbkdf2Key(b, "pencil", []byte("0123456789abcdef"), 4096)
	}
}
