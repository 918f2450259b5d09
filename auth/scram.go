package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
)

// Mechanism is the SASL mechanism the server offers.
const Mechanism = mechanism

// ErrFailed is the error of an exchange whose proof does not match the
// verifier, or of an exchange for a user with no verifier (see
// NewFailingExchange). The router reports both the same way, so a client
// cannot tell an unknown user from a wrong password.
var ErrFailed = errors.New("auth: password authentication failed")

// errOutOfOrder is a message the exchange did not expect at this step.
var errOutOfOrder = malformed("message out of order")

// serverNonceLen is PostgreSQL's SCRAM_RAW_NONCE_LEN.
const serverNonceLen = 18

// Exchange is the server side of one SCRAM-SHA-256 exchange:
//
//	client-first  -> ServerFirst -> server-first (AuthenticationSASLContinue)
//	client-final  -> ServerFinal -> server-final (AuthenticationSASLFinal), or ErrFailed
//
// Channel binding is not offered: a client that requires it (gs2 flag 'p')
// is refused. An Exchange is used by one goroutine, once.
type Exchange struct {
	v      Verifier
	doomed bool // a user without a verifier: fails at the end, like a wrong password

	step        int    // 0: want client-first; 1: want client-final; 2: done
	gs2         string // the client's GS2 header, which c= must repeat
	nonce       string // client nonce + server nonce
	firstBare   string
	serverFirst string

	// serverNonce makes the server's nonce; tests set it.
	serverNonce func() (string, error)
}

// NewExchange returns an exchange that authenticates against v.
func NewExchange(v Verifier) *Exchange {
	return &Exchange{v: v, serverNonce: randomNonce}
}

// NewFailingExchange returns an exchange for a user that does not exist (or
// whose verifier is unusable). It looks like one with a real verifier, down
// to a salt that is the same on every attempt for the same name, and fails
// with ErrFailed at the end. secret keeps those salts unpredictable; keep
// it for the process's life.
func NewFailingExchange(secret []byte, user string) *Exchange {
	e := NewExchange(mockVerifier(secret, user))
	e.doomed = true
	return e
}

// mockVerifier is a made-up verifier for user: its salt and keys are
// HMACs of the name under secret.
func mockVerifier(secret []byte, user string) Verifier {
	salt := hmacSum(secret, "salt\x00"+user)[:saltLen]
	return Verifier{Iterations: DefaultIterations, Salt: salt,
		StoredKey: hmacSum(secret, "stored\x00"+user), ServerKey: hmacSum(secret, "server\x00"+user)}
}

// ServerFirst reads the client-first-message and returns the
// server-first-message. Errors wrap ErrMalformed.
func (e *Exchange) ServerFirst(clientFirstMsg []byte) ([]byte, error) {
	if e.step != 0 {
		return nil, errOutOfOrder
	}
	e.step = 2 // any error ends the exchange
	cf, err := parseClientFirst(string(clientFirstMsg))
	if err != nil {
		return nil, err
	}
	switch {
	case cf.cbind == 'p':
		return nil, malformed("the client requires channel binding (%s), which the server did not offer", cf.cbName)
	case cf.authzid != "":
		return nil, malformed("the client asks for an authorization identity, which is not supported")
	}
	sn, err := e.serverNonce()
	if err != nil {
		return nil, err
	}
	e.gs2, e.firstBare, e.nonce = cf.gs2, cf.bare, cf.nonce+sn
	e.serverFirst = "r=" + e.nonce + ",s=" + base64.StdEncoding.EncodeToString(e.v.Salt) + ",i=" + strconv.Itoa(e.v.Iterations)
	e.step = 1
	return []byte(e.serverFirst), nil
}

// ServerFinal reads the client-final-message and returns the
// server-final-message (v=ServerSignature) when the client's proof matches
// the verifier. Errors wrap ErrMalformed or are ErrFailed.
func (e *Exchange) ServerFinal(clientFinalMsg []byte) ([]byte, error) {
	if e.step != 1 {
		return nil, errOutOfOrder
	}
	e.step = 2
	cf, err := parseClientFinal(string(clientFinalMsg))
	if err != nil {
		return nil, err
	}
	if string(cf.cbind) != e.gs2 {
		return nil, malformed("the channel binding attribute does not repeat the GS2 header")
	}
	if cf.nonce != e.nonce {
		return nil, malformed("the nonce does not match the exchange's")
	}
	if len(cf.proof) != keyLen {
		return nil, malformed("the proof is %d bytes, not %d", len(cf.proof), keyLen)
	}
	authMessage := e.firstBare + "," + e.serverFirst + "," + cf.withoutProof
	clientSig := hmacSum(e.v.StoredKey, authMessage)
	clientKey := make([]byte, keyLen)
	subtle.XORBytes(clientKey, cf.proof, clientSig)
	stored := sha256.Sum256(clientKey)
	if !hmac.Equal(stored[:], e.v.StoredKey) || e.doomed {
		return nil, ErrFailed
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSum(e.v.ServerKey, authMessage))), nil
}

func randomNonce() (string, error) {
	b := make([]byte, serverNonceLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
