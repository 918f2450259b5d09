package router

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"
)

// CertFiles is a certificate chain and private key read from PEM files,
// served to clients through GetCertificate. Reload reads the files again
// (on SIGHUP, say): new handshakes get the new pair, sessions already
// encrypted keep theirs. It is safe for concurrent use.
type CertFiles struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertFiles reads the pair; an error names the file and what is wrong.
func LoadCertFiles(certFile, keyFile string) (*CertFiles, error) {
	f := &CertFiles{certFile: certFile, keyFile: keyFile}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again. On an error the pair served so far stays.
func (f *CertFiles) Reload() error {
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("router: TLS certificate %s with key %s: %w", f.certFile, f.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("router: TLS certificate %s: %w", f.certFile, err)
		}
	}
	f.cur.Store(&cert)
	return nil
}

// NotAfter is when the certificate served now expires.
func (f *CertFiles) NotAfter() time.Time { return f.cur.Load().Leaf.NotAfter }

// GetCertificate returns the pair served now (tls.Config.GetCertificate).
func (f *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cur.Load(), nil
}

// Config returns a TLS configuration that serves f's pair, for
// Config.TLS.
func (f *CertFiles) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: f.GetCertificate}
}
