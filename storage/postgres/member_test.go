package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestMemberDSN checks that pgx reads back what dsn writes, socket
// directories with spaces and quotes included, and the form without a socket.
func TestMemberDSN(t *testing.T) {
	for _, dir := range []string{"/tmp/c/pg/run", "/tmp/my cluster/pg/run", `/tmp/it's\here/pg/run`} {
		m := &member{manifestMember: manifestMember{Port: 17001}, socketDir: dir}
		cfg, err := pgconn.ParseConfig(m.dsn("my db"))
		if err != nil {
			t.Fatalf("%s: %v", m.dsn("my db"), err)
		}
		if cfg.Host != dir || cfg.Port != 17001 || cfg.Database != "my db" || cfg.User != "postgres" ||
			len(cfg.Fallbacks) != 1 || cfg.Fallbacks[0].Host != "127.0.0.1" || cfg.Fallbacks[0].Port != 17001 {
			t.Errorf("%s: host %q port %d database %q user %q fallbacks %d", m.dsn("my db"), cfg.Host, cfg.Port, cfg.Database, cfg.User, len(cfg.Fallbacks))
		}
	}
	m := &member{manifestMember: manifestMember{Port: 17001}}
	if got := m.dsn("app"); got != "postgres://postgres@127.0.0.1:17001/app?sslmode=disable" {
		t.Errorf("without a socket: %s", got)
	}
}

// TestSocketDir checks that a cluster directory whose socket paths would
// pass the kernel's limit gets no socket directory.
func TestSocketDir(t *testing.T) {
	if got := socketDir("/tmp/c/pg"); got != "/tmp/c/pg/run" {
		t.Errorf("socketDir(/tmp/c/pg) = %q", got)
	}
	long := "/" + strings.Repeat("d", maxSocketPath-len("/run/.s.PGSQL.65535")-1)
	if got := socketDir(long); got != long+"/run" {
		t.Errorf("at the limit: %q", got)
	}
	if got := socketDir(long + "x"); got != "" {
		t.Errorf("one byte over the limit: %q, want none", got)
	}
}
