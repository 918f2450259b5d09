// Package auth authenticates clients of the router: SCRAM-SHA-256 (RFC 5802
// and RFC 7677, as PostgreSQL speaks it) against verifiers in PostgreSQL's
// format. It holds no state besides what callers pass in and does no I/O.
package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Verifier parameters: PostgreSQL's defaults.
const (
	// DefaultIterations is PostgreSQL's scram_iterations default.
	DefaultIterations = 4096
	// MinIterations and MaxIterations bound what ParseVerifier accepts:
	// fewer than RFC 7677's minimum is too weak, more would make every
	// login of a client cost seconds.
	MinIterations = 4096
	MaxIterations = 10_000_000
	saltLen       = 16
	keyLen        = sha256.Size
	mechanism     = "SCRAM-SHA-256"
	// MaxPasswordLen bounds a password (PostgreSQL's own bound is 1 MB for
	// a message; no one types more than this).
	MaxPasswordLen = 1024
)

// ErrInvalidVerifier is wrapped by ParseVerifier's errors.
var ErrInvalidVerifier = errors.New("auth: invalid SCRAM-SHA-256 verifier")

// ErrInvalidPassword is wrapped by errors about a password that cannot be
// used (empty, too long, not printable ASCII).
var ErrInvalidPassword = errors.New("auth: invalid password")

// Verifier is what the server keeps of a password: the salt, the iteration
// count, and the two keys SCRAM derives from the salted password. It is
// enough to check a client's proof and to prove the server to it, and
// useless for logging in elsewhere without breaking the hash.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// ValidatePassword reports whether password can be used: 1 to
// MaxPasswordLen bytes of printable ASCII. Other characters are refused
// because clients normalize them (SASLprep) in ways that differ between
// drivers, which would make a password work with one and fail with another.
func ValidatePassword(password string) error {
	if password == "" {
		return fmt.Errorf("%w: it is empty", ErrInvalidPassword)
	}
	if len(password) > MaxPasswordLen {
		return fmt.Errorf("%w: it is %d bytes long, at most %d", ErrInvalidPassword, len(password), MaxPasswordLen)
	}
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < ' ' || c > '~' {
			return fmt.Errorf("%w: byte %d is not printable ASCII (letters, digits, punctuation and spaces are fine)", ErrInvalidPassword, i)
		}
	}
	return nil
}

// NewVerifier makes a verifier of password with a fresh random salt and
// iterations rounds (0 for DefaultIterations).
func NewVerifier(password string, iterations int) (Verifier, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, fmt.Errorf("auth: salt: %w", err)
	}
	return ComputeVerifier(password, salt, iterations)
}

// ComputeVerifier makes the verifier of password with salt and iterations
// rounds (0 for DefaultIterations). The password must pass ValidatePassword.
func ComputeVerifier(password string, salt []byte, iterations int) (Verifier, error) {
	if err := ValidatePassword(password); err != nil {
		return Verifier{}, err
	}
	if iterations == 0 {
		iterations = DefaultIterations
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Verifier{}, fmt.Errorf("auth: %d iterations out of range %d..%d", iterations, MinIterations, MaxIterations)
	}
	if len(salt) == 0 {
		return Verifier{}, errors.New("auth: empty salt")
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, keyLen)
	if err != nil {
		return Verifier{}, fmt.Errorf("auth: %w", err)
	}
	clientKey := hmacSum(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return Verifier{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  stored[:],
		ServerKey:  hmacSum(salted, "Server Key"),
	}, nil
}

// String returns the verifier in PostgreSQL's format (pg_authid.rolpassword):
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, in standard
// base64.
func (v Verifier) String() string {
	b64 := base64.StdEncoding.EncodeToString
	return mechanism + "$" + strconv.Itoa(v.Iterations) + ":" + b64(v.Salt) + "$" + b64(v.StoredKey) + ":" + b64(v.ServerKey)
}

// ParseVerifier parses a verifier in PostgreSQL's format. Errors wrap
// ErrInvalidVerifier and never contain the input.
func ParseVerifier(s string) (Verifier, error) {
	bad := func(why string) (Verifier, error) {
		return Verifier{}, fmt.Errorf("%w: %s", ErrInvalidVerifier, why)
	}
	rest, ok := strings.CutPrefix(s, mechanism+"$")
	if !ok {
		return bad("it does not start with " + mechanism + "$")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return bad("no '$' between the parameters and the keys")
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return bad("no ':' between the iteration count and the salt")
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return bad("no ':' between the stored key and the server key")
	}
	iter, err := strconv.Atoi(iterText)
	if err != nil || iter < MinIterations || iter > MaxIterations {
		return bad(fmt.Sprintf("the iteration count is not a number in %d..%d", MinIterations, MaxIterations))
	}
	dec := base64.StdEncoding.Strict().DecodeString
	salt, err := dec(saltText)
	if err != nil || len(salt) == 0 {
		return bad("the salt is not base64")
	}
	stored, err := dec(storedText)
	if err != nil || len(stored) != keyLen {
		return bad("the stored key is not 32 bytes of base64")
	}
	server, err := dec(serverText)
	if err != nil || len(server) != keyLen {
		return bad("the server key is not 32 bytes of base64")
	}
	return Verifier{Iterations: iter, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

// Check reports whether password is the one the verifier was made of. It
// costs the verifier's iterations of PBKDF2; the server never needs it
// (a SCRAM exchange uses the keys), tools and tests do.
func (v Verifier) Check(password string) bool {
	w, err := ComputeVerifier(password, v.Salt, v.Iterations)
	return err == nil && hmac.Equal(w.StoredKey, v.StoredKey) && hmac.Equal(w.ServerKey, v.ServerKey)
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
