package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shardline/shardline/internal/tlscert"
)

// The TLS targets are pgbouncer and router with TLS between the clients
// and the proxy (the servers behind it stay as they are): pgbench connects
// with sslmode=require, and each proxy requires TLS. Side by side with
// their plaintext targets they give what TLS costs per transaction in
// each; both serve the same self-signed ECDSA P-256 certificate.
const (
	// TargetPgBouncerTLS is TargetPgBouncer with client_tls_sslmode =
	// require.
	TargetPgBouncerTLS = "pgbouncer-tls"
	// TargetRouterTLS is TargetRouter with --tls-cert, --tls-key and
	// --tls-required.
	TargetRouterTLS = "router-tls"
)

// tlsDirName is the work directory's folder of the TLS targets' pair.
const tlsDirName = "tls"

// tlsPair returns the TLS targets' certificate and key files, made on
// first use in the work directory.
func (b *builder) tlsPair() (cert, key string, err error) {
	dir := filepath.Join(b.cfg.Dir, tlsDirName)
	cert, key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if _, err := os.Stat(key); err == nil {
		return cert, key, nil
	}
	certPEM, keyPEM, err := tlscert.SelfSigned([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("TLS directory: %w", err)
	}
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return cert, key, nil
}

// pgbouncerTLS is TargetPgBouncerTLS.
func (b *builder) pgbouncerTLS(ctx context.Context) (Target, error) {
	cert, key, err := b.tlsPair()
	if err != nil {
		return Target{}, err
	}
	cfg := b.cfg
	b.progress("starting PgBouncer with client TLS (transaction mode, pool size %d) in front of shard %s's primary", cfg.PoolSize, b.shard1)
	pgb, err := b.startBouncer(ctx, TargetPgBouncerTLS, PgBouncerConfig{Server: b.directDSN, PoolSize: cfg.PoolSize, TLSCertFile: cert, TLSKeyFile: key})
	if err != nil {
		return Target{}, err
	}
	t := bouncerTarget(TargetPgBouncerTLS, pgb, fmt.Sprintf("%s, client_tls_sslmode=require (ECDSA P-256 certificate; clients sslmode=require), pool_mode=transaction, default_pool_size=%d, in front of the primary of shard %s%s",
		pgb.Version(), pgb.PoolSize(), b.shard1, b.onCluster))
	t.Pool = fmt.Sprintf("%d to shard %s (default_pool_size), over %s", pgb.PoolSize(), b.shard1, b.hop)
	if err := b.pb.Check(ctx, TargetPgBouncerTLS, t.Endpoints[0]); err != nil {
		return Target{}, err
	}
	return t, nil
}

// routerTLS is TargetRouterTLS: router's tenant and pool, with TLS.
func (b *builder) routerTLS(ctx context.Context) (Target, error) {
	cert, key, err := b.tlsPair()
	if err != nil {
		return Target{}, err
	}
	r, proc, err := b.startRouter(ctx, TargetRouterTLS, b.cfg.PoolSize, "", []string{"--tls-cert", cert, "--tls-key", key, "--tls-required"})
	if err != nil {
		return Target{}, err
	}
	rs := routerSide{dsn: r.DSN, pid: r.PID(), metricsURL: r.MetricsURL, process: proc,
		pool: fmt.Sprintf("%d to shard %s, over %s", r.PoolSize, b.shard1, b.hop)}
	return rs.target(TargetRouterTLS, fmt.Sprintf("Shardline router with client TLS required (ECDSA P-256 certificate; clients sslmode=require), every client tenant %s (shard %s) by startup option%s",
		b.tenant1, b.shard1, b.onCluster), b.ep1), nil
}
