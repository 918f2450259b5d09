package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/chaos"
)

// Exit statuses of `shardline drill`, besides 0 (every invariant held over
// the whole workload) and 2 (usage).
const (
	// drillViolated: a read broke an invariant.
	drillViolated = 1
	// drillNotRun: the drill could not run, or not over the whole
	// workload (cluster out of reach, sessions that failed): nothing is
	// known of the invariants.
	drillNotRun = 3
)

// drillCommand is `shardline drill replica-lag`.
type drillCommand struct {
	Client *api.Client
	// RouterDSN reaches the router; "" asks the admin API for the router
	// of its cluster.
	RouterDSN string
	Duration  time.Duration
	Workers   int
	MaxLag    time.Duration
	JSON      bool
	Stdout    io.Writer
	Stderr    io.Writer
}

func runDrill(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) > 0 && args[0] == "isolation" {
		return runIsolationDrill(ctx, env, args[1:])
	}
	if len(args) == 0 || args[0] != "replica-lag" {
		return usageErr("usage: shardline drill replica-lag|isolation [flags]; the drills are: replica-lag, isolation")
	}
	fs := newFlagSet(env, "drill replica-lag")
	var af adminFlags
	af.register(fs)
	c := &drillCommand{Stdout: env.Stdout, Stderr: env.Stderr}
	fs.StringVar(&c.RouterDSN, "router", "", "router `DSN` (default: the router of the admin API's cluster)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long the workload runs")
	fs.IntVar(&c.Workers, "workers", 4, "writing sessions (as many read-only sessions run beside them)")
	fs.DurationVar(&c.MaxLag, "max-lag", 500*time.Millisecond, "the sessions' shardline.max_lag")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: shardline drill replica-lag [flags]\n\nRuns write-then-read sessions through the router while pausing and resuming WAL replay\non every replica. Exits 1 if any read was staler than max-lag or missed its session's write,\n3 if the drill could not run (or sessions failed, so the invariants were not checked throughout).")
		fs.PrintDefaults()
	}
	if err := af.parseNoArgs(fs, args[1:]); err != nil {
		return err
	}
	client, err := af.client(env)
	if err != nil {
		return notRun(err)
	}
	c.Client, c.JSON = client, af.json()
	return c.Run(ctx)
}

// Run finds the shards' members and tenants on every shard through the
// admin API, runs the drill and prints its report.
func (c *drillCommand) Run(ctx context.Context) error {
	st, err := c.Client.Status(ctx)
	if err != nil {
		return notRun(adminError(c.Client, err))
	}
	router, err := drillRouter(c.Client, st, c.RouterDSN)
	if err != nil {
		return err
	}
	cfg := chaos.ReplicaLagConfig{RouterDSN: router, Duration: c.Duration, Workers: c.Workers, MaxLag: c.MaxLag, Progress: c.Stderr}
	index := map[string]int{}
	for _, s := range st.Shards {
		ds := chaos.DrillShard{ID: s.ID, Primary: s.Primary.DSN}
		for _, r := range s.Replicas {
			ds.Replicas = append(ds.Replicas, r.DSN)
		}
		index[s.ID] = len(cfg.Shards)
		cfg.Shards = append(cfg.Shards, ds)
	}
	// One tenant per shard, found by asking where candidate ids live.
	for i, missing := 0, len(cfg.Shards); missing > 0 && i < 1000; i++ {
		name := fmt.Sprintf("drill-%d", i)
		v, err := c.Client.ShowTenant(ctx, name)
		if err != nil {
			return notRun(adminError(c.Client, err))
		}
		if k, ok := index[v.Shard]; ok && cfg.Shards[k].Tenant == "" {
			cfg.Shards[k].Tenant = name
			missing--
		}
	}
	rep, err := chaos.RunReplicaLag(ctx, cfg)
	if err != nil {
		return drillNotRunError(c.Client, err, c.RouterDSN != "")
	}
	if c.JSON {
		if err := printJSON(c.Stdout, rep); err != nil {
			return err
		}
	} else {
		total := rep.ReadsPrimary + rep.ReadsReplica
		fmt.Fprintf(c.Stdout, "replica-lag drill: %s, %d writing + %d reading sessions, max_lag %s, %d replay pauses\n",
			rep.Duration.Round(time.Millisecond), c.Workers, c.Workers, rep.MaxLag, rep.Pauses)
		fmt.Fprintf(c.Stdout, "writes                    %d\n", rep.Writes)
		fmt.Fprintf(c.Stdout, "reads served by primary   %d\n", rep.ReadsPrimary)
		fmt.Fprintf(c.Stdout, "reads served by replicas  %d (%.1f%%)\n", rep.ReadsReplica, pct(rep.ReadsReplica, total))
		fmt.Fprintf(c.Stdout, "stale reads               %d (must be 0; max replica staleness seen %s)\n", rep.StaleReads, rep.MaxStaleness.Round(time.Millisecond))
		fmt.Fprintf(c.Stdout, "read-your-writes misses   %d (must be 0)\n", rep.RYWMisses)
		fmt.Fprintf(c.Stdout, "read latency p50 / p99    %s / %s\n", rep.ReadP50.Round(time.Microsecond), rep.ReadP99.Round(time.Microsecond))
		fmt.Fprintf(c.Stdout, "session errors            %d\n", rep.Errors)
	}
	switch {
	case rep.Violated():
		return &exitError{code: drillViolated, msg: "invariant broken: " + rep.FirstViolation}
	case ctx.Err() != nil:
		return &exitError{code: drillNotRun, msg: fmt.Sprintf("drill interrupted after %s of %s: no violation until then, but the invariants were not checked for the whole run",
			rep.Duration.Round(time.Second), c.Duration)}
	case rep.Errors > 0:
		return &exitError{code: drillNotRun, msg: fmt.Sprintf("drill incomplete: %d failures while it ran, so the invariants were not checked throughout; first: %s", rep.Errors, rep.FirstError)}
	}
	return nil
}

// notRun gives an admin API error the drill's "could not run" status.
func notRun(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: drillNotRun, msg: ee.msg}
	}
	return err
}

func pct(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// drillRouter is the router a drill attacks: --router's DSN (given), else
// the one the admin API reports for its cluster (st); exit 3 when neither.
func drillRouter(client *api.Client, st api.Status, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if st.RouterDSN == "" {
		return "", &exitError{code: drillNotRun, msg: fmt.Sprintf("the admin API at %s reports no router for cluster %s; pass the router's DSN with --router", client.BaseURL(), st.Cluster)}
	}
	return st.RouterDSN, nil
}

// drillNotRunError is exit 3 for a drill that could not run, with what to
// do when the router was out of reach (routerGiven: named by --router).
func drillNotRunError(client *api.Client, err error, routerGiven bool) error {
	msg := "drill not run: " + strings.TrimPrefix(err.Error(), "drill: ")
	if errors.Is(err, chaos.ErrRouterUnreachable) {
		hint := fmt.Sprintf("the admin API at %s names it as its cluster's router; is that router running?", client.BaseURL())
		if routerGiven {
			hint = "start the cluster ('shardline up') or pass the router's DSN with --router"
		}
		msg += "; " + hint
	}
	return &exitError{code: drillNotRun, msg: msg}
}
