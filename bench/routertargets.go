package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// routerLogDir is the work directory's folder of the router processes'
// logs (TARGET.log).
const routerLogDir = "routers"

// routerSide is where a router target's clients go and what measures it.
type routerSide struct {
	dsn           string
	pid           int
	process, pool string
	metricsURL    string // "" for an external router (its endpoint is not known)
}

// target is the router target called name on side, its clients going to
// the side's router with the startup options of eps.
func (rs routerSide) target(name, description string, eps ...Endpoint) Target {
	t := Target{Name: name, Description: description, ProxyPID: rs.pid, Process: rs.process, Pool: rs.pool, MetricsURL: rs.metricsURL}
	for _, e := range eps {
		t.Endpoints = append(t.Endpoints, Endpoint{DSN: rs.dsn, Options: e.Options})
	}
	return t
}

// router is TargetRouter: every client tenant1, a pass-through to one
// shard.
func (b *builder) router(ctx context.Context) (Target, error) {
	rs, err := b.routerSide(ctx, TargetRouter, b.cfg.PoolSize, func(r *RouterProcess) string {
		return fmt.Sprintf("%d to shard %s, over %s", r.PoolSize, b.shard1, b.hop)
	})
	if err != nil {
		return Target{}, err
	}
	return rs.target(TargetRouter, fmt.Sprintf("Shardline router, every client tenant %s (shard %s) by startup option: pass-through to one shard%s",
		b.tenant1, b.shard1, b.onCluster), b.ep1), nil
}

// router2 is TargetRouter2: half the clients tenant1, half tenant2, routed
// to their two shards.
func (b *builder) router2(ctx context.Context) (Target, error) {
	rs, err := b.routerSide(ctx, TargetRouter2, max(1, b.cfg.PoolSize/2), func(r *RouterProcess) string {
		return fmt.Sprintf("%d per shard: %d in all to shards %s and %s, over %s", r.PoolSize, 2*r.PoolSize, b.shard1, b.shard2, b.hop)
	})
	if err != nil {
		return Target{}, err
	}
	return rs.target(TargetRouter2, fmt.Sprintf("Shardline router, two pgbench processes at once, half the clients each: tenant %s (shard %s) and tenant %s (shard %s), by startup option%s",
		b.tenant1, b.shard1, b.tenant2, b.shard2, b.onCluster), b.ep1, b.ep2), nil
}

// routerSide returns where target's clients go. With an external cluster
// every router target uses its router. Otherwise the target gets a
// `shardline router` process of its own against the throwaway cluster's
// etcd with poolSize server connections per shard: router has
// cfg.PoolSize, router-2shards max(1, cfg.PoolSize/2), so that its two
// shards together have as many as router's one (the same pool pressure at
// the same client count). pool describes the process's pool.
func (b *builder) routerSide(ctx context.Context, target string, poolSize int, pool func(*RouterProcess) string) (routerSide, error) {
	if b.cfg.External != nil {
		ext := routerSide{dsn: b.routerDSN, pid: b.routerPID, process: "the external router, not measured (no --router-pid)",
			pool: "the external router's own (not known to the bench)"}
		if b.routerPID > 0 {
			ext.process = fmt.Sprintf("the external router (pid %d)", b.routerPID)
		}
		return ext, nil
	}
	r, proc, err := b.startRouter(ctx, target, poolSize, "", nil)
	if err != nil {
		return routerSide{}, err
	}
	return routerSide{dsn: r.DSN, pid: r.PID(), metricsURL: r.MetricsURL, process: proc, pool: pool(r)}, nil
}

// startRouter starts target's `shardline router` against the throwaway
// cluster's etcd (under placement name cluster; "" for the cluster's own)
// and names its process and how its event loop runs (the report's
// settings table says so).
func (b *builder) startRouter(ctx context.Context, target string, poolSize int, cluster string, flags []string) (*RouterProcess, string, error) {
	cfg := b.cfg
	if err := os.MkdirAll(filepath.Join(cfg.Dir, routerLogDir), 0o755); err != nil {
		return nil, "", fmt.Errorf("router log directory: %w", err)
	}
	b.progress("starting a router for %s: shardline router --pool-size %d against the cluster's etcd", target, poolSize)
	r, err := StartRouter(ctx, RouterConfig{
		Command: cfg.Shardline, Args: cfg.ShardlineArgs, Env: cfg.ShardlineEnv, Name: target,
		LogPath: filepath.Join(cfg.Dir, routerLogDir, target+".log"), Etcd: b.s.cluster.Etcd, PoolSize: poolSize, Cluster: cluster,
		Flags:  append([]string{"--binding-token-file", b.s.cluster.BindingTokenFile}, flags...),
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, "", fmt.Errorf("start the router for %s: %w", target, err)
	}
	b.s.routers = append(b.s.routers, r)
	b.s.RouterLogs = append(b.s.RouterLogs, r.LogPath())
	mode, err := ScrapeLoopMode(ctx, r.MetricsURL)
	if err != nil {
		return nil, "", err
	}
	shown := fmt.Sprintf("--pool-size %d", r.PoolSize)
	if cluster != "" {
		shown += " --cluster " + cluster
	}
	for _, f := range flags {
		if strings.HasPrefix(f, "--") {
			shown += " " + f // the flags, not the work directory's file names
		}
	}
	return r, fmt.Sprintf("shardline router %s (event loop: %s)", shown, mode), nil
}
