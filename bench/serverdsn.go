package bench

import (
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// tcpDSN returns a URL DSN for the first TCP host of dsn, which may be
// libpq's multi-host form with a Unix socket directory first (as
// `shardline up` publishes its servers), so that the direct targets reach
// the server as the clients reach the proxies: over loopback TCP. A DSN
// with no TCP host is returned as it is.
func tcpDSN(dsn string) (string, error) {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("server DSN: %w", err)
	}
	hosts := append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port}}, pc.Fallbacks...)
	for _, h := range hosts {
		if network, _ := pgconn.NetworkAddress(h.Host, h.Port); network == "tcp" {
			u := "postgres://" + urlUser(pc.User, pc.Password) + "@" + net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))) +
				"/" + url.PathEscape(pc.Database) + "?sslmode=disable"
			return u, nil
		}
	}
	return dsn, nil
}

// serverHop names how a client of dsn reaches the server first: "Unix
// socket" or "TCP".
func serverHop(dsn string) string {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "TCP"
	}
	if network, _ := pgconn.NetworkAddress(pc.Host, pc.Port); network == "unix" {
		return "Unix socket"
	}
	return "TCP"
}
