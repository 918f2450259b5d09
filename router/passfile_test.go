package router

import (
	"os"
	"path/filepath"
	"testing"
)

// TestServerUserPasswordFromPassfile: a pool that logs in as the shard's
// server_user takes that user's password from the passfile, not the
// password the DSN's own user has.
func TestServerUserPasswordFromPassfile(t *testing.T) {
	pass := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pass, []byte("db.example:5432:app:shardline_app:app-secret\n*:*:*:postgres:admin-secret\nlocalhost:5433:app:shardline_app:socket-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pass)
	for _, tc := range []struct{ dsn, user, want string }{
		{"postgres://postgres@db.example:5432/app", "shardline_app", "app-secret"},
		{"postgres://postgres:dsn-secret@db.example:5432/app", "shardline_app", "app-secret"},
		{"postgres://postgres@other.example:5432/app", "shardline_app", ""},
		{"host=/run/pg port=5433 user=postgres dbname=app", "shardline_app", "socket-secret"},
		{"postgres://postgres@db.example:5432/app", "", "admin-secret"},
	} {
		p, err := newPool("s1", tc.dsn, tc.user, 1, 0, 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.cfg.Password != tc.want {
			t.Errorf("%s as %q: password %q, want %q", tc.dsn, tc.user, p.cfg.Password, tc.want)
		}
	}
}
