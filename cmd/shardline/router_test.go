package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// startRouter runs `shardline router` in process against etcd on free
// ports and waits until it is ready. The returned stop cancels it and
// waits for Run to return.
func startRouter(t *testing.T, etcd []string, tokenFile string) (routerInfo, *bytes.Buffer, func() error) {
	t.Helper()
	stdout := &bytes.Buffer{}
	c := &routerCommand{
		Listen: freeAddr(t), Metrics: freeAddr(t), Etcd: etcd, routerFlags: routerFlags{Database: "app", PoolSize: 4},
		BindingTokenFile: tokenFile,
		Stdout:           stdout, Logger: pgtest.Logger(t),
	}
	info, stop := runUntilReady(t, "router", time.Minute, &c.OnReady, c.Run)
	return info, stdout, stop
}

// TestRouterFollowsPlacement runs a standalone router against the etcd of
// an up cluster: a tenant is routed where the admin API says it lives, and
// a pin to the other shard reaches the standalone router too.
func TestRouterFollowsPlacement(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	var etcd, upMetrics string
	dir := pgtest.Dir(t)
	up, _ := startUpWith(t, dir, 2, 0, func(c *upCommand) { etcd, upMetrics, c.Pprof = c.Etcd, c.Metrics, true })
	info, stdout, stop := startRouter(t, []string{etcd}, filepath.Join(dir, "pg", "binding.token"))
	if want := "shardline router ready: router " + info.RouterDSN + "  metrics " + info.MetricsURL + "\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	resp, err := http.Get(info.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %d", info.MetricsURL, resp.StatusCode)
	}
	// The profiles only where --pprof asked for them: up here, not the
	// standalone router.
	if got := statusOfGet(t, strings.TrimSuffix(info.MetricsURL, "/metrics")+"/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("router without --pprof: GET /debug/pprof/ = %d, want 404", got)
	}
	if got := statusOfGet(t, "http://"+upMetrics+"/debug/pprof/"); got != http.StatusOK {
		t.Errorf("up with --pprof: GET /debug/pprof/ = %d, want 200", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := api.NewClient(up.AdminURL, &http.Client{})
	conn, err := pgx.Connect(ctx, withAppPassword(t, info.RouterDSN, up.AppPasswordFile)+"&options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	shardVia := func() string {
		t.Helper()
		var shard, bound string
		if err := conn.QueryRow(ctx, "SHOW shardline.shard").Scan(&shard); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&bound); err != nil || bound != "acme" {
			t.Fatalf("tenant through the standalone router: %q %v", bound, err)
		}
		return shard
	}
	view, err := admin.ShowTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := shardVia(); got != view.Shard {
		t.Fatalf("SHOW shardline.shard = %s, the admin API says %s", got, view.Shard)
	}

	other := "s1"
	if view.Shard == "s1" {
		other = "s2"
	}
	maps, unsubscribe := info.Placement.Subscribe()
	defer unsubscribe()
	if _, err := admin.PinTenant(ctx, "acme", other); err != nil {
		t.Fatal(err)
	}
	for moved := false; !moved; {
		select {
		case p := <-maps:
			moved = p.Locate(shardline.TenantID("acme")).Shard == shardline.ShardID(other)
		case <-ctx.Done():
			t.Fatalf("the standalone router's map never put acme on %s", other)
		}
	}
	if got := shardVia(); got != other {
		t.Errorf("after the pin, SHOW shardline.shard = %s, want %s", got, other)
	}
	if err := stop(); err != nil {
		t.Errorf("router after stop: %v", err)
	}
}

func TestRouterErrors(t *testing.T) {
	// etcd out of reach: exit status 1 and what to do.
	c := &routerCommand{Listen: freeAddr(t), Metrics: freeAddr(t), Etcd: []string{freeAddr(t)}, EtcdTimeout: 300 * time.Millisecond, Stdout: &bytes.Buffer{}}
	err := c.Run(t.Context())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "cannot reach etcd at "+c.Etcd[0]) || !strings.Contains(ee.msg, "--etcd") {
		t.Errorf("unreachable etcd: %v", err)
	}

	// Bad flags: exit status 2 and one line, before anything is dialed.
	for _, tc := range []struct{ args, want string }{
		{"--pool-size 0", "--pool-size 0: want at least 1"},
		{"--target sometimes", "--target: "},
		{"--max-lag soon", "--max-lag: "},
		{"--replica-poll 1ms", "--replica-poll 1ms is below 10ms"},
		{"--cluster Prod/1", `--cluster "Prod/1"`},
		{"--etcd ,", "--etcd: no endpoints"},
		{"extra", `unexpected argument "extra"`},
	} {
		r := runCLI(t, "", append([]string{"router", "--listen", freeAddr(t), "--metrics", freeAddr(t)}, strings.Fields(tc.args)...)...)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "shardline router: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("router %s: exit %d, stderr %q; want 2 and a line with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
