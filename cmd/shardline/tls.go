package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shardline/shardline/internal/tlscert"
	"github.com/shardline/shardline/router"
)

// TLS for the router's clients: --tls-cert and --tls-key name a PEM pair
// (reloaded on SIGHUP), --tls-required refuses plaintext sessions, and
// `shardline up --tls` makes a self-signed pair in the cluster directory.

// Where `up --tls` keeps its self-signed pair, under the cluster directory.
const (
	tlsDirName       = "tls"
	selfSignedCert   = "server.crt"
	selfSignedKey    = "server.key"
	selfSignedExpiry = 365 * 24 * time.Hour
	// renewBefore: a self-signed certificate that expires within this is
	// made again at start.
	renewBefore = 7 * 24 * time.Hour
)

// tlsFlags are the router's TLS settings, part of routerFlags.
type tlsFlags struct {
	TLSCert     string
	TLSKey      string
	TLSRequired bool
	// SelfSigned is up's --tls: up makes (or reuses) the pair in the
	// cluster directory and sets TLSCert and TLSKey to it.
	SelfSigned bool

	certs *router.CertFiles // loaded by loadTLS
}

// checkTLS rejects incomplete TLS flags and a pair that cannot be read:
// exit status 2 naming them.
func (f *tlsFlags) checkTLS() error {
	switch {
	case (f.TLSCert == "") != (f.TLSKey == ""):
		return usageErr("--tls-cert and --tls-key go together: give both files (PEM), or neither")
	case f.TLSRequired && f.TLSCert == "" && !f.SelfSigned:
		return usageErr("--tls-required needs a certificate: give --tls-cert and --tls-key (or 'shardline up --tls' for a self-signed one)")
	}
	return f.loadTLS()
}

// tlsConfig is the router's Config.TLS: nil until loadTLS loaded a pair.
func (f *tlsFlags) tlsConfig() *tls.Config {
	if f.certs == nil {
		return nil
	}
	return f.certs.Config()
}

// loadTLS reads the pair, if there is one and it is not read yet. A pair
// that cannot be read is exit status 2.
func (f *tlsFlags) loadTLS() error {
	if f.TLSCert == "" || f.certs != nil {
		return nil
	}
	certs, err := router.LoadCertFiles(f.TLSCert, f.TLSKey)
	if err != nil {
		return usageErr("--tls-cert/--tls-key: %v", err)
	}
	f.certs = certs
	return nil
}

// reloadOnHUP reads the pair again on every SIGHUP for as long as lc runs
// (new sessions get the new one; a pair that does not load is logged and
// the old one kept).
func (f *tlsFlags) reloadOnHUP(lc *lifecycle, log *slog.Logger) {
	if f.certs == nil {
		return
	}
	certs := f.certs
	log.Info("router TLS", "cert", f.TLSCert, "expires", certs.NotAfter().Format(time.RFC3339), "required", f.TLSRequired)
	if time.Until(certs.NotAfter()) < renewBefore {
		log.Warn("the router's TLS certificate expires soon (or has): replace it and send SIGHUP", "cert", f.TLSCert, "expires", certs.NotAfter())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx := lc.ctx
	lc.goRun("TLS certificate reload", func() error {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				if err := certs.Reload(); err != nil {
					log.Error("SIGHUP: TLS certificate not reloaded; the router keeps the one it had", "err", err)
					continue
				}
				log.Info("SIGHUP: TLS certificate reloaded for new sessions", "cert", f.TLSCert, "expires", certs.NotAfter().Format(time.RFC3339))
			}
		}
	})
}

// sslParams are the connection string parameters a client of this router
// uses: verify-full against the self-signed certificate, require with a
// certificate of the operator's (whose CA the client knows, or not), and
// disable without TLS.
func (f *tlsFlags) sslParams() string {
	switch {
	case f.TLSCert == "":
		return "sslmode=disable"
	case f.SelfSigned:
		root := f.TLSCert
		if strings.ContainsAny(root, "&#%?=+ ") {
			root = url.QueryEscape(root)
		}
		return "sslmode=verify-full&sslrootcert=" + root
	}
	return "sslmode=require"
}

// ensureSelfSigned returns DIR/tls/server.crt and server.key, making them
// when they are missing or the certificate expires within renewBefore:
// a self-signed ECDSA pair for 127.0.0.1, localhost and the host name, the
// key mode 0600. made reports whether it made them.
func ensureSelfSigned(dir string) (certFile, keyFile string, made bool, err error) {
	tlsDir := filepath.Join(dir, tlsDirName)
	certFile, keyFile = filepath.Join(tlsDir, selfSignedCert), filepath.Join(tlsDir, selfSignedKey)
	if c, err := router.LoadCertFiles(certFile, keyFile); err == nil && time.Until(c.NotAfter()) > renewBefore {
		return certFile, keyFile, false, nil
	}
	hosts := []string{"127.0.0.1", "localhost", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	certPEM, keyPEM, err := tlscert.SelfSigned(hosts, selfSignedExpiry)
	if err != nil {
		return "", "", false, fmt.Errorf("make a self-signed TLS certificate: %w", err)
	}
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("create %s: %w", tlsDir, err)
	}
	// The key first, then the certificate: a crash in between leaves a
	// pair that does not load, which the next run makes again.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", false, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", false, err
	}
	return certFile, keyFile, true, nil
}

// writeFileAtomic writes data to a temporary file beside name, then
// renames it over name.
func writeFileAtomic(name string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing there
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
