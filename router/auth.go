package router

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/auth"
)

// Client authentication, and the tenants a login may act as.
//
// With AuthSCRAM (the default) every session proves its password with
// SCRAM-SHA-256 against the user's verifier before anything else; an
// unknown user gets the same exchange (a made-up salt, stable per name) and
// the same error as a wrong password. With AuthTrust no password is asked,
// and Serve refuses to listen anywhere but loopback.
//
// A user's tenants bind its sessions: with one, every session acts as it
// without any option; with several, a session names one of them. Naming
// another (startup option, SET shardline.tenant, a tenant comment) is
// 42501. The exchange runs once per connection on the session's task:
// it reads keys from the verifier and never runs PBKDF2.

// UserSource gives the router its users. Lookup is called on the event
// loop for every new connection, so it must not block (an etcd watcher's
// in-memory copy: etcdstore.UserWatcher).
type UserSource interface {
	Lookup(name string) (shardline.User, bool)
}

// AuthMethod is how the router authenticates clients.
type AuthMethod string

const (
	// AuthSCRAM asks every client for its password with SCRAM-SHA-256.
	AuthSCRAM AuthMethod = "scram-sha-256"
	// AuthTrust asks for no password; users that exist still have their
	// tenants. Only on a loopback listener.
	AuthTrust AuthMethod = "trust"
)

// ParseAuthMethod parses "scram-sha-256" or "trust".
func ParseAuthMethod(s string) (AuthMethod, error) {
	switch m := AuthMethod(s); m {
	case AuthSCRAM, AuthTrust:
		return m, nil
	}
	return "", fmt.Errorf("unknown authentication method %q: want scram-sha-256 or trust", s)
}

// codeInvalidPassword is invalid_password: PostgreSQL's SQLSTATE for a
// failed password authentication (and an unknown user).
const codeInvalidPassword = "28P01"

// maxAuthMessage bounds a client's SASL message before it is authenticated
// (PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH).
const maxAuthMessage = 65535

// Reasons of shardline_router_auth_failures_total.
const (
	failUnknownUser   = "unknown_user"
	failWrongPassword = "wrong_password"
	failBadVerifier   = "bad_verifier" // the user's stored verifier does not parse
	failProtocol      = "protocol"     // a malformed or unexpected message
	failAbandoned     = "abandoned"    // the client hung up during the exchange (psql does, to prompt for a password)
)

// authenticator is the router's part of authentication: the method, the
// users, the secret of failing exchanges' salts and the metrics.
type authenticator struct {
	method       AuthMethod
	users        UserSource
	secret       []byte
	failures     *prometheus.CounterVec // by reason
	tenantDenied prometheus.Counter
}

func newAuthenticator(cfg *Config, reg prometheus.Registerer) *authenticator {
	a := &authenticator{method: cfg.Auth, users: cfg.Users, secret: make([]byte, 32),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardline_router_auth_failures_total",
			Help: "Client logins refused, by reason (unknown_user, wrong_password, bad_verifier, protocol, abandoned)."}, []string{"reason"}),
		tenantDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardline_router_tenant_denied_total",
			Help: "Statements, SETs and startup options refused because they named a tenant the session's user is not bound to."}),
	}
	_, _ = rand.Read(a.secret)
	for _, r := range []string{failUnknownUser, failWrongPassword, failBadVerifier, failProtocol, failAbandoned} {
		a.failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(a.failures, a.tenantDenied)
	}
	return a
}

func (a *authenticator) lookup(name string) (shardline.User, bool) {
	if a.users == nil {
		return shardline.User{}, false
	}
	return a.users.Lookup(name)
}

// checkListener refuses trust authentication on a listener that is not
// loopback.
func (a *authenticator) checkListener(addr net.Addr) error {
	if a.method != AuthTrust {
		return nil
	}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		return nil
	}
	if _, ok := addr.(*net.UnixAddr); ok {
		return nil
	}
	return fmt.Errorf("router: trust authentication on %s: only a loopback address may skip passwords (listen on 127.0.0.1, or use scram-sha-256)", addr)
}

// credential is what a session's login allows.
type credential struct {
	kind    shardline.UserKind
	tenants []shardline.TenantID // nil: any tenant
}

func credentialOf(u shardline.User) credential {
	c := credential{kind: u.Kind}
	if u.Kind != shardline.UserAdmin {
		c.tenants = u.Tenants
	}
	return c
}

// defaultTenant is the tenant a session starts with (and RESET or DISCARD
// ALL return it to): the user's one tenant, else none.
func (c *credential) defaultTenant() shardline.TenantID {
	if len(c.tenants) == 1 {
		return c.tenants[0]
	}
	return ""
}

// checkTenant refuses t ("" is always allowed: no tenant) when the
// session's user is bound to other tenants; where names the source for
// the message.
func (s *session) checkTenant(t shardline.TenantID, where string) error {
	if len(s.cred.tenants) == 0 || t == "" || slices.Contains(s.cred.tenants, t) {
		return nil
	}
	s.r.auth.tenantDenied.Inc()
	names := make([]string, len(s.cred.tenants))
	for i, b := range s.cred.tenants {
		names[i] = string(b)
	}
	bound := "tenant " + names[0] + ": its sessions act as " + names[0] + " only"
	if len(names) > 1 {
		bound = "tenants " + strings.Join(names, ", ") + ": its sessions act as one of them only"
	}
	return &Error{Code: codeInsufficientPrivilege,
		Message: fmt.Sprintf("user %q may not act as tenant %q (%s)", s.st.user, t, where),
		Hint:    fmt.Sprintf("User %q is bound to %s. Connect as a user of tenant %s ('shardline user add NAME --tenant %s').", s.st.user, bound, t, t)}
}

// authenticate runs the configured authentication for the session's
// user: nothing for trust, else a SCRAM-SHA-256 exchange. It sets s.cred.
// A refused login is a fatal 28P01 that says the same for an unknown user
// and a wrong password; a client that hangs up returns an error
// isClientGone recognizes.
func (s *session) authenticate() error {
	a := s.r.auth
	u, known := a.lookup(s.st.user)
	if a.method == AuthTrust {
		if known {
			s.cred = credentialOf(u)
		}
		return nil
	}
	reason := failWrongPassword
	var ex *auth.Exchange
	if known {
		v, err := auth.ParseVerifier(u.Verifier)
		if err == nil {
			ex = auth.NewExchange(v)
		} else {
			reason = failBadVerifier
			s.logger().Error("user's stored verifier does not parse; refusing the login ('shardline user passwd' sets a new one)", "err", err)
		}
	} else {
		reason = failUnknownUser
	}
	if ex == nil {
		ex = auth.NewFailingExchange(a.secret, s.st.user)
	}
	err := s.scram(ex)
	switch {
	case err == nil:
		s.cred = credentialOf(u)
		return nil
	case isClientGone(err):
		reason = failAbandoned
	case errors.Is(err, auth.ErrFailed):
		err = &Error{Code: codeInvalidPassword, Fatal: true, Message: fmt.Sprintf("password authentication failed for user %q", s.st.user)}
	default:
		reason = failProtocol
		var re *Error
		if !errors.As(err, &re) {
			err = &Error{Code: codeProtocolViolation, Fatal: true, Message: err.Error()}
		}
	}
	a.failures.WithLabelValues(reason).Inc()
	if reason != failAbandoned {
		s.logger().Warn("client authentication failed", "reason", reason)
	}
	return err
}

// scram runs the exchange's messages: AuthenticationSASL offering
// SCRAM-SHA-256, the client's SASLInitialResponse, SASLContinue, the
// client's SASLResponse, SASLFinal. AuthenticationOk is greet's.
func (s *session) scram(ex *auth.Exchange) error {
	s.mb.reset().int32(10).str(auth.Mechanism).byte1(0)
	writeMsg(s.out, 'R', s.mb.b)
	if err := s.out.Flush(); err != nil {
		return err
	}
	body, err := s.readSASL()
	if err != nil {
		return err
	}
	mech, rest, ok := cstring(body)
	if !ok || len(rest) < 4 {
		return errBadMessage("SASLInitialResponse")
	}
	if mech != auth.Mechanism {
		return &Error{Code: codeProtocolViolation, Fatal: true, Message: "client selected an invalid SASL authentication mechanism",
			Hint: "The router offers " + auth.Mechanism + " only."}
	}
	n := int32(binary.BigEndian.Uint32(rest))
	if data := rest[4:]; n < 0 || int(n) != len(data) {
		return errBadMessage("SASLInitialResponse")
	}
	reply, err := ex.ServerFirst(rest[4:])
	if err != nil {
		return err
	}
	s.mb.reset().int32(11).bytes(reply)
	writeMsg(s.out, 'R', s.mb.b)
	if err := s.out.Flush(); err != nil {
		return err
	}
	if body, err = s.readSASL(); err != nil {
		return err
	}
	if reply, err = ex.ServerFinal(body); err != nil {
		return err
	}
	s.mb.reset().int32(12).bytes(reply)
	writeMsg(s.out, 'R', s.mb.b)
	return nil // flushed with AuthenticationOk
}

// readSASL reads the client's next message, which must be a SASL response
// ('p') of at most maxAuthMessage bytes. Terminate is the client going
// away.
func (s *session) readSASL() ([]byte, error) {
	hdr, err := s.in.r.Peek(5)
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	switch typ, n := hdr[0], binary.BigEndian.Uint32(hdr[1:5]); {
	case typ == 'X':
		return nil, errClientTerminated
	case typ != 'p':
		return nil, &Error{Code: codeProtocolViolation, Fatal: true, Message: fmt.Sprintf("expected a SASL response, got message type %q", typ)}
	case n < 4 || n-4 > maxAuthMessage:
		return nil, &Error{Code: codeProtocolViolation, Fatal: true, Message: fmt.Sprintf("SASL response of %d bytes, at most %d", int64(n)-4, maxAuthMessage)}
	}
	_, body, err := s.in.next()
	return body, err
}
