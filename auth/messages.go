package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// The client's two SCRAM messages (RFC 5802 section 7), parsed. Their
// fields are substrings of the message.

// ErrMalformed is wrapped by the errors about a client message that is not
// SCRAM-SHA-256 as the server offers it: a syntax error, channel binding the
// server did not offer, an authorization identity, a mandatory extension,
// a nonce or channel binding that does not match. The text after it names
// the problem without repeating the client's bytes.
var ErrMalformed = errors.New("malformed SCRAM message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// clientFirst is a client-first-message:
//
//	gs2-cbind-flag "," [ "a=" authzid ] "," [ "m=" ... "," ] "n=" user "," "r=" nonce [ "," extensions ]
type clientFirst struct {
	cbind   byte   // 'n' (no binding), 'y' (client could bind, server did not offer) or 'p' (binding requested)
	cbName  string // the channel binding type, for 'p'
	authzid string // the authorization identity ("" when none)
	user    string // the user name, unescaped ("" for libpq, which sends "n=")
	nonce   string // the client's nonce
	gs2     string // the GS2 header: everything before the bare message, with its last ','
	bare    string // client-first-message-bare: what the AuthMessage includes
}

// parseClientFirst parses a client-first-message. It refuses a mandatory
// extension (m=), as RFC 5802 requires of servers that know none.
func parseClientFirst(msg string) (clientFirst, error) {
	var cf clientFirst
	rest := msg
	if rest == "" {
		return cf, malformed("the client-first-message is empty")
	}
	switch rest[0] {
	case 'n', 'y':
		cf.cbind, rest = rest[0], rest[1:]
	case 'p':
		name, r, ok := strings.Cut(rest[1:], ",")
		if !ok || !strings.HasPrefix(name, "=") || len(name) < 2 || !validCBName(name[1:]) {
			return cf, malformed("the channel binding flag 'p' needs a binding type name")
		}
		cf.cbind, cf.cbName, rest = 'p', name[1:], ","+r
	default:
		return cf, malformed("the channel binding flag is not 'n', 'y' or 'p='")
	}
	if !strings.HasPrefix(rest, ",") {
		return cf, malformed("expected ',' after the channel binding flag")
	}
	rest = rest[1:]
	authz, r, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, malformed("the GS2 header does not end with ','")
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return cf, malformed("expected an authorization identity (a=) or ',' in the GS2 header")
		}
		if cf.authzid, ok = unescapeName(v); !ok || cf.authzid == "" {
			return cf, malformed("the authorization identity is not a valid saslname")
		}
	}
	rest = r
	cf.gs2 = msg[:len(msg)-len(rest)]
	cf.bare = rest
	if strings.HasPrefix(rest, "m=") {
		return cf, malformed("the client requires an unsupported SCRAM extension")
	}
	user, r, ok := strings.Cut(rest, ",")
	v, isUser := strings.CutPrefix(user, "n=")
	if !ok || !isUser {
		return cf, malformed("expected the user name attribute (n=)")
	}
	if cf.user, ok = unescapeName(v); !ok {
		return cf, malformed("the user name is not a valid saslname")
	}
	nonce, r, more := strings.Cut(r, ",")
	v, isNonce := strings.CutPrefix(nonce, "r=")
	if !isNonce {
		return cf, malformed("expected the nonce attribute (r=)")
	}
	if !validNonce(v) {
		return cf, malformed("the client nonce is empty or not printable")
	}
	cf.nonce = v
	if more {
		if err := checkExtensions(r); err != nil {
			return cf, err
		}
	}
	return cf, nil
}

// clientFinal is a client-final-message:
//
//	"c=" base64(gs2 header + channel binding data) "," "r=" nonce [ "," extensions ] "," "p=" base64(proof)
type clientFinal struct {
	cbind        []byte // decoded channel binding attribute
	nonce        string // client nonce + server nonce
	proof        []byte // decoded ClientProof
	withoutProof string // client-final-message-without-proof: what the AuthMessage includes
}

func parseClientFinal(msg string) (clientFinal, error) {
	var cf clientFinal
	i := strings.LastIndexByte(msg, ',')
	if i < 0 {
		return cf, malformed("the client-final-message has no proof")
	}
	cf.withoutProof = msg[:i]
	proof, ok := strings.CutPrefix(msg[i+1:], "p=")
	if !ok {
		return cf, malformed("the client-final-message does not end with the proof (p=)")
	}
	var err error
	if cf.proof, err = base64.StdEncoding.Strict().DecodeString(proof); err != nil {
		return cf, malformed("the proof is not base64")
	}
	cb, rest, _ := strings.Cut(cf.withoutProof, ",")
	v, ok := strings.CutPrefix(cb, "c=")
	if !ok {
		return cf, malformed("expected the channel binding attribute (c=)")
	}
	if cf.cbind, err = base64.StdEncoding.Strict().DecodeString(v); err != nil {
		return cf, malformed("the channel binding attribute is not base64")
	}
	nonce, rest, more := strings.Cut(rest, ",")
	v, ok = strings.CutPrefix(nonce, "r=")
	if !ok || !validNonce(v) {
		return cf, malformed("expected the nonce attribute (r=)")
	}
	cf.nonce = v
	if more {
		if err := checkExtensions(rest); err != nil {
			return cf, err
		}
	}
	return cf, nil
}

// checkExtensions checks a list of optional extensions, attr=value pairs
// separated by ',' (the server knows none and ignores them).
func checkExtensions(list string) error {
	for a := range strings.SplitSeq(list, ",") {
		if len(a) < 3 || a[1] != '=' || !isAlpha(a[0]) {
			return malformed("an extension is not attr=value")
		}
	}
	return nil
}

// unescapeName decodes a saslname: "=2C" is ',', "=3D" is '=', and no other
// '=' or any ',' may appear.
func unescapeName(s string) (string, bool) {
	if strings.IndexByte(s, ',') >= 0 {
		return "", false
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// escapeName encodes a saslname (the inverse of unescapeName).
func escapeName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// validNonce: printable ASCII but ','.
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName: a channel binding type name, 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '-' {
			return false
		}
	}
	return s != ""
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
