package router

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardline/shardline/internal/netloop"
)

// TLS for clients. A client asks for it with an SSLRequest before its
// StartupMessage (libpq's sslmode=prefer, require, verify-ca and
// verify-full); the router answers 'S' and runs the handshake on the
// session's own connection (netloop's StartTLS: crypto/tls over the event
// loop's socket I/O, with the handshake's CPU off the loop). A client may
// also begin with its ClientHello (PostgreSQL 17's sslnegotiation=direct),
// which then must negotiate the ALPN protocol "postgresql", as PostgreSQL
// requires. docs/tls.md says why this design and what it costs.

// alpnPostgres is the ALPN protocol PostgreSQL clients and servers name.
const alpnPostgres = "postgresql"

// sslAccepted is the answer to an SSLRequest the router takes (read only).
var sslAccepted = []byte{'S'}

// tlsRecordHandshake is the first byte of a TLS ClientHello record; no
// startup packet begins with it (their first byte is the high byte of a
// length of at most maxStartupLen).
const tlsRecordHandshake = 0x16

// tlsServer is the router's side of client TLS: the configuration every
// handshake uses and its metrics. A nil *tlsServer is a router without
// TLS.
type tlsServer struct {
	cfg      *tls.Config
	required bool
	log      *slog.Logger

	handshakes *prometheus.CounterVec // by result
	refused    prometheus.Counter     // plaintext sessions refused by TLSRequired
}

// newTLSServer returns nil when cfg has no TLS configuration.
func newTLSServer(cfg *Config) *tlsServer {
	if cfg.TLS == nil {
		return nil
	}
	ts := &tlsServer{
		cfg:      serverTLSConfig(cfg.TLS),
		required: cfg.TLSRequired,
		log:      cfg.Logger,
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardline_router_tls_handshakes_total", Help: "TLS handshakes with clients, by result (ok, failed)."}, []string{"result"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardline_router_tls_plaintext_refused_total", Help: "Unencrypted client sessions refused because TLS is required."}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(ts.handshakes, ts.refused)
	}
	return ts
}

// serverTLSConfig is the caller's configuration with the router's rules:
// TLS 1.2 at least, and ALPN "postgresql" unless the caller named
// protocols. Cipher suites stay Go's defaults.
func serverTLSConfig(in *tls.Config) *tls.Config {
	cfg := in.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{alpnPostgres}
	}
	return cfg
}

// validateTLS checks Config's TLS settings.
func validateTLS(c *Config) error {
	if c.TLS == nil {
		if c.TLSRequired {
			return errors.New("router: TLSRequired needs TLS (a certificate and key)")
		}
		return nil
	}
	if c.TLS.MinVersion != 0 && c.TLS.MinVersion < tls.VersionTLS12 {
		return fmt.Errorf("router: TLS MinVersion %s is below TLS 1.2", tls.VersionName(c.TLS.MinVersion))
	}
	if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
		return errors.New("router: TLS has no certificate")
	}
	return nil
}

// negotiate answers an SSLRequest: 'S', then the handshake. Data the
// client sent after its request, before the handshake, was not encrypted
// and may have been injected by a man in the middle: refused, as
// PostgreSQL refuses it (CVE-2021-23214).
func (ts *tlsServer) negotiate(t *netloop.Task, c *netloop.Conn, br *bufio.Reader) error {
	if _, err := c.Write(sslAccepted); err != nil {
		return err
	}
	if br.Buffered() > 0 {
		return &Error{Code: codeProtocolViolation, Fatal: true, Message: "received unencrypted data after SSL request",
			Hint: "This is either a client bug or an attempted man-in-the-middle attack: the client must wait for the router's answer before it starts TLS."}
	}
	return ts.handshake(t, c, nil)
}

// direct runs the handshake of a client that began with its ClientHello
// (sslnegotiation=direct): what br holds of it is handed to TLS first.
func (ts *tlsServer) direct(t *netloop.Task, c *netloop.Conn, br *bufio.Reader) error {
	prefix := make([]byte, br.Buffered())
	_, _ = br.Read(prefix) // cannot fail: the bytes are buffered
	if err := ts.handshake(t, c, prefix); err != nil {
		return err
	}
	if st, _ := c.TLS(); st.NegotiatedProtocol != alpnPostgres {
		ts.log.Debug("direct TLS without ALPN postgresql refused", "remote", c.RemoteAddr().String())
		return &Error{Code: codeProtocolViolation, Fatal: true, Message: "received direct SSL connection request without ALPN protocol negotiation extension",
			Hint: "Use a client that sends ALPN \"postgresql\" (libpq 17 does), or connect with sslnegotiation=postgres."}
	}
	return nil
}

func (ts *tlsServer) handshake(t *netloop.Task, c *netloop.Conn, prefix []byte) error {
	if err := c.StartTLS(t, ts.cfg, prefix); err != nil {
		ts.handshakes.WithLabelValues("failed").Inc()
		ts.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return err
	}
	ts.handshakes.WithLabelValues("ok").Inc()
	return nil
}

// refusePlaintext returns the error for an unencrypted session when TLS
// is required, nil when it is not required or the connection is local (a
// Unix socket, where clients never ask for TLS: as PostgreSQL's hostssl
// lines do not cover local connections).
func (ts *tlsServer) refusePlaintext(c *netloop.Conn, st *startup) error {
	if ts == nil || !ts.required {
		return nil
	}
	addr := c.RemoteAddr()
	if _, local := addr.(*net.UnixAddr); local {
		return nil
	}
	ts.refused.Inc()
	host := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok {
		host = tcp.IP.String()
	}
	return &Error{Code: codeInvalidAuthorization, Fatal: true,
		Message: fmt.Sprintf("TLS is required: connection for host %q, user %q, database %q, no encryption", host, st.user, st.database),
		Hint:    "Connect with sslmode=require, or sslmode=verify-full with sslrootcert naming the router's CA certificate."}
}
