package bench

import (
	"os/exec"
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

// testFreePort returns a loopback TCP port that was free a moment ago.
func testFreePort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requirePgBouncer fails t when pgbouncer is not installed: the bench's
// integration tests need it, and .ci/run installs it.
func requirePgBouncer(t *testing.T) {
	t.Helper()
	if _, err := FindPgBouncer(""); err != nil {
		if _, lerr := exec.LookPath("apt-get"); lerr == nil {
			t.Fatalf("%v (apt-get install pgbouncer; .ci/run installs it)", err)
		}
		t.Fatal(err)
	}
}
