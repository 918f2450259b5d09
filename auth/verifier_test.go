package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shardline/shardline/auth"
)

func TestVerifierRoundTrip(t *testing.T) {
	v, err := auth.NewVerifier("correct horse", 0)
	if err != nil {
		t.Fatal(err)
	}
	s := v.String()
	if !strings.HasPrefix(s, "SCRAM-SHA-256$4096:") {
		t.Fatalf("verifier %q lacks PostgreSQL's prefix", s)
	}
	if strings.Contains(s, "correct horse") {
		t.Fatal("the verifier holds the password")
	}
	w, err := auth.ParseVerifier(s)
	if err != nil {
		t.Fatal(err)
	}
	if w.String() != s {
		t.Fatalf("round trip: %q, want %q", w.String(), s)
	}
	if !w.Check("correct horse") || w.Check("correct horsE") {
		t.Fatal("Check does not tell the password from another")
	}
	u, err := auth.NewVerifier("correct horse", 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.String() == s {
		t.Fatal("two verifiers of one password share a salt")
	}
}

func TestParseVerifierRefuses(t *testing.T) {
	good, err := auth.NewVerifier("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	g := good.String()
	for _, s := range []string{
		"", "md5abcdef", "pw",
		strings.Replace(g, "4096", "4095", 1),
		strings.Replace(g, "4096", "x", 1),
		strings.Replace(g, "SCRAM-SHA-256$", "SCRAM-SHA-1$", 1),
		g[:len(g)-4],
		strings.Replace(g, ":", ";", 1),
		g + "$",
	} {
		if _, err := auth.ParseVerifier(s); !errors.Is(err, auth.ErrInvalidVerifier) {
			t.Errorf("ParseVerifier(%q) = %v, want ErrInvalidVerifier", s, err)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, pw := range []string{"", "tab\there", "é", strings.Repeat("a", auth.MaxPasswordLen+1)} {
		if err := auth.ValidatePassword(pw); !errors.Is(err, auth.ErrInvalidPassword) {
			t.Errorf("ValidatePassword(%q) = %v, want ErrInvalidPassword", pw, err)
		}
	}
	for _, pw := range []string{"a", "with spaces and ~!@#$%^&*()", strings.Repeat("a", auth.MaxPasswordLen)} {
		if err := auth.ValidatePassword(pw); err != nil {
			t.Errorf("ValidatePassword(%q) = %v", pw, err)
		}
	}
}
