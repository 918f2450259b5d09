package bench

import (
	"strings"
	"testing"
)

func TestTCPDSN(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"host=/tmp/c/pg/run,127.0.0.1 port=17000 user=postgres dbname=app sslmode=disable",
			"postgres://postgres@127.0.0.1:17000/app?sslmode=disable"},
		{"host=/tmp/s,::1 port=5,6 user=o'neil password=p dbname='my db'",
			"postgres://o%27neil:p@[::1]:6/my%20db?sslmode=disable"},
		{"postgres://postgres@127.0.0.1:5432/app?sslmode=disable", "postgres://postgres@127.0.0.1:5432/app?sslmode=disable"},
		{"host=/tmp/only port=5432 user=postgres dbname=app", "host=/tmp/only port=5432 user=postgres dbname=app"},
	}
	for _, tt := range tests {
		got, err := tcpDSN(tt.dsn)
		if err != nil || got != tt.want {
			t.Errorf("tcpDSN(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
		}
	}
	if _, err := tcpDSN("postgres://a@b:x/y"); err == nil || !strings.Contains(err.Error(), "server DSN") {
		t.Errorf("bad DSN: %v", err)
	}
}

func TestServerHop(t *testing.T) {
	for dsn, want := range map[string]string{
		"host=/tmp/c/pg/run,127.0.0.1 port=17000 user=postgres dbname=app": "Unix socket",
		"postgres://postgres@127.0.0.1:5432/app":                           "TCP",
	} {
		if got := serverHop(dsn); got != want {
			t.Errorf("serverHop(%q) = %q, want %q", dsn, got, want)
		}
	}
}
