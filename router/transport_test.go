package router

import (
	"context"
	"fmt"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
)

// staticPlacement is a placement map that never changes.
type staticPlacement struct{ p *shardline.Placement }

func (s staticPlacement) Current() *shardline.Placement { return s.p }

// tcpOnly returns dsn's TCP fallback: the test cluster's DSNs name each
// server's Unix socket first and 127.0.0.1 second.
func tcpOnly(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil || len(cfg.Fallbacks) != 1 {
		t.Fatalf("DSN %q: %v, want a socket and a TCP host", dsn, err)
	}
	f := cfg.Fallbacks[0]
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, net.JoinHostPort(f.Host, fmt.Sprint(f.Port)), cfg.Database)
}

// TestServersOverEachTransport runs a router of its own whose shard DSNs
// are the cluster's (Unix socket first) or only their TCP hosts, and checks
// that its sessions reach the servers that way, and that a cancel request
// reaches them too (it goes where the server connection went).
func TestServersOverEachTransport(t *testing.T) {
	needCluster(t)
	for _, tc := range []struct {
		name string
		tcp  bool
		want string // inet_server_addr() as the server sees the router
	}{{"unix", false, "socket"}, {"tcp", true, "127.0.0.1/32"}} {
		t.Run(tc.name, func(t *testing.T) {
			p := *env.watcher.Current()
			p.Shards = maps.Clone(p.Shards)
			if tc.tcp {
				for id, s := range p.Shards {
					s.Primary.DSN = tcpOnly(t, s.Primary.DSN)
					s.Replicas = nil
					p.Shards[id] = s
				}
			}
			_, routerAddr := serveRouter(t, Config{Placement: staticPlacement{&p}, PoolSize: 2, WaitTimeout: 5 * time.Second, NoIOUring: testNoIOUring})

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@%s/app?sslmode=disable&options=-c%%20shardline.tenant%%3Dtransport1", routerAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			var addr string
			if err := c.QueryRow(ctx, "SELECT coalesce(inet_server_addr()::text, 'socket')").Scan(&addr); err != nil {
				t.Fatal(err)
			}
			if addr != tc.want {
				t.Fatalf("the router reached its server over %s, want %s", addr, tc.want)
			}
			checkCancel(t, c, p.Locate("transport1").Shard)
		})
	}
}
