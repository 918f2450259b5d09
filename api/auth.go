package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// tokenHint is what a refused request is told to do.
const tokenHint = "(hint: send the header 'Authorization: Bearer TOKEN' with the cluster's admin token; " +
	"the CLI sends it from --admin-token-file, $SHARDLINE_ADMIN_TOKEN or --dir; 'shardline up' keeps it in DIR/admin.token)"

// bearer is the admin token as the server checks it: its SHA-256, so that
// the comparison takes the same time whatever the length of what was
// sent.
type bearer struct {
	sum     [sha256.Size]byte
	set     bool // a token is configured
	require bool // requests without it are refused
}

func newBearer(token string, require bool) bearer {
	if token == "" {
		return bearer{require: require}
	}
	return bearer{sum: sha256.Sum256([]byte(token)), set: true, require: require}
}

// matches reports whether sent is the token, in time independent of where
// sent and the token differ and of their lengths (both are hashed first).
func (b *bearer) matches(sent string) bool {
	got := sha256.Sum256([]byte(sent))
	return b.set && subtle.ConstantTimeCompare(got[:], b.sum[:]) == 1
}

// check returns "" when r may be served, else the message of its 401 and
// the WWW-Authenticate challenge. A request without a bearer token is
// served unless the token is required; one with a token is served only if
// the token is right (or none is configured).
func (b *bearer) check(r *http.Request) (msg, challenge string) {
	sent, ok := bearerToken(r.Header.Get("Authorization"))
	switch {
	case !ok && b.require:
		return "this admin API needs its admin token " + tokenHint, `Bearer realm="shardline"`
	case !ok || !b.set:
		return "", ""
	case !b.matches(sent):
		return "wrong admin token " + tokenHint, `Bearer realm="shardline", error="invalid_token"`
	}
	return "", ""
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN"
// header value (the scheme is case-insensitive, RFC 7235), and false for
// an empty header, another scheme or an empty token.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
