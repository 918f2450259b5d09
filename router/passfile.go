package router

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgpassfile"
	"github.com/jackc/pgx/v5/pgconn"
)

// passfilePassword returns the password of cfg's user for its first host,
// port and database from the router host's passfile (PGPASSFILE, else
// ~/.pgpass), as libpq would look it up; "" when there is none. The
// server_user of a shard Shardline did not create logs in with it: a
// password is never kept in etcd.
func passfilePassword(cfg *pgconn.Config) string {
	path := os.Getenv("PGPASSFILE")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		path = filepath.Join(home, ".pgpass")
	}
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		return ""
	}
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		host = "localhost" // a Unix socket, as libpq names it in the passfile
	}
	return pf.FindPassword(host, strconv.Itoa(int(cfg.Port)), cfg.Database, cfg.User)
}
