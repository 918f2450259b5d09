package api

import (
	"net/http/httptest"
	"testing"
)

// TestBearerMatches checks the comparison: only the exact token matches,
// not a prefix, an extension, another case or the empty string; with no
// token configured nothing matches. (It hashes both sides and compares the
// hashes with crypto/subtle.ConstantTimeCompare, so neither where a guess
// differs nor its length changes how long the comparison takes.)
func TestBearerMatches(t *testing.T) {
	b := newBearer("s3cret-token", true)
	for sent, want := range map[string]bool{
		"s3cret-token":  true,
		"s3cret-toke":   false,
		"s3cret-token ": false,
		"s3cret-tokenx": false,
		"S3CRET-TOKEN":  false,
		"":              false,
		"x3cret-token":  false,
	} {
		if got := b.matches(sent); got != want {
			t.Errorf("matches(%q) = %v, want %v", sent, got, want)
		}
	}
	none := newBearer("", false)
	if none.matches("") || none.matches("s3cret-token") {
		t.Error("a bearer without a token matched")
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":      "abc",
		"bearer abc":      "abc",
		"BEARER   abc  ":  "abc",
		"Bearer":          "",
		"Bearer ":         "",
		"Basic abc":       "",
		"":                "",
		"Bearerabc":       "",
		"Token abc":       "",
		" Bearer a b":     "a b",
		"Bearer\tabc":     "",
		"Bearer abc\tdef": "abc\tdef",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

func TestBearerCheck(t *testing.T) {
	for _, tc := range []struct {
		token   string
		require bool
		header  string
		refused bool
	}{
		{"t", true, "", true},
		{"t", true, "Bearer t", false},
		{"t", true, "Bearer u", true},
		{"t", false, "", false},
		{"t", false, "Bearer t", false},
		{"t", false, "Bearer u", true},
		{"t", false, "Basic dTpw", false},
		{"", false, "Bearer u", false},
	} {
		b := newBearer(tc.token, tc.require)
		r := httptest.NewRequest("GET", "/v1/status", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		msg, challenge := b.check(r)
		if (msg != "") != tc.refused || (msg != "") != (challenge != "") {
			t.Errorf("token %q require %v header %q: msg %q challenge %q; refused want %v", tc.token, tc.require, tc.header, msg, challenge, tc.refused)
		}
	}
}
