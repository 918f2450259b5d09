package bench

import (
	"net"
	"testing"

	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// startPostgres starts a throwaway one-shard PostgreSQL cluster with the
// shared harness and returns its primary's DSN; the cluster stops when t
// ends.
func startPostgres(t *testing.T) string {
	t.Helper()
	return pgtest.ForTest(t, 1, 0).Shards()[0].Primary.DSN
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
