package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/auth"
	"github.com/shardline/shardline/chaos"
)

// isolationDrillCommand is `shardline drill isolation`.
type isolationDrillCommand struct {
	Client *api.Client
	// RouterDSN reaches the router; "" asks the admin API for the router
	// of its cluster.
	RouterDSN   string
	BoundDSN    string
	TLSRequired bool
	Only        string
	JSON        bool
	Stdout      io.Writer
	Stderr      io.Writer
}

func runIsolationDrill(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "drill isolation")
	var af adminFlags
	af.register(fs)
	c := &isolationDrillCommand{Stdout: env.Stdout, Stderr: env.Stderr}
	fs.StringVar(&c.RouterDSN, "router", "", "router `DSN`, with the application user's password when the router asks for one (default: the router of the admin API's cluster)")
	fs.StringVar(&c.BoundDSN, "bound-dsn", "", "router `DSN` of a user bound to one tenant: the drill has it name other tenants (skipped without)")
	fs.BoolVar(&c.TLSRequired, "tls-required", false, "the router is meant to refuse plaintext clients: a plaintext session it accepts is a leak")
	fs.StringVar(&c.Only, "only", "", "run only the attacks whose name contains `text`")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: shardline drill isolation [flags]\n\nAttacks other tenants' rows through the router as a neighbour: two tenants on one shard and one\non another, a tenant table made by schema apply, and every attack of docs/isolation.md. Each attack is\nblocked (by what), LEAKED (what) or skipped (why). Exits 1 on any leak, 3 if the drill could not run\n(or an attack could not).")
		fs.PrintDefaults()
	}
	if err := af.parseNoArgs(fs, args); err != nil {
		return err
	}
	client, err := af.client(env)
	if err != nil {
		return notRun(err)
	}
	c.Client, c.JSON = client, af.json()
	return c.Run(ctx)
}

// drillCluster is the admin API as the isolation drill needs it.
type drillCluster struct{ c *api.Client }

var _ chaos.IsolationCluster = drillCluster{}

func (d drillCluster) ApplySchema(ctx context.Context, sql string) error {
	res, err := d.c.ApplySchema(ctx, sql)
	if err != nil {
		for _, r := range res {
			if !r.OK {
				return fmt.Errorf("shard %s: %s", r.Shard, r.Error)
			}
		}
	}
	return err
}

var _ chaos.BoundUsers = drillCluster{}

// AddBoundUser makes an application user bound to tenant, sending only
// the password's SCRAM verifier, as 'shardline user add' does.
func (d drillCluster) AddBoundUser(ctx context.Context, name, password, tenant string) error {
	v, err := auth.NewVerifier(password, 0)
	if err != nil {
		return err
	}
	_, err = d.c.CreateUser(ctx, name, "app", []string{tenant}, v.String())
	return err
}

func (d drillCluster) RemoveUser(ctx context.Context, name string) error {
	_, err := d.c.RemoveUser(ctx, name)
	return err
}

func (d drillCluster) TenantShard(ctx context.Context, tenant string) (string, error) {
	v, err := d.c.ShowTenant(ctx, tenant)
	return v.Shard, err
}

// Run finds the cluster's shards and router through the admin API, runs
// the drill and prints its scorecard.
func (c *isolationDrillCommand) Run(ctx context.Context) error {
	st, err := c.Client.Status(ctx)
	if err != nil {
		return notRun(adminError(c.Client, err))
	}
	router, err := drillRouter(c.Client, st, c.RouterDSN)
	if err != nil {
		return err
	}
	cfg := chaos.IsolationConfig{RouterDSN: router, Cluster: drillCluster{c.Client}, BoundDSN: c.BoundDSN,
		TLSRequired: c.TLSRequired, Only: c.Only, Progress: c.Stderr}
	for _, s := range st.Shards {
		cfg.Shards = append(cfg.Shards, chaos.IsolationShard{ID: s.ID, Primary: s.Primary.DSN})
	}
	rep, err := chaos.RunIsolation(ctx, cfg)
	if err != nil {
		return drillNotRunError(c.Client, err, c.RouterDSN != "")
	}
	if c.JSON {
		if err := printJSON(c.Stdout, rep); err != nil {
			return err
		}
	} else {
		printScorecard(c.Stdout, rep)
	}
	switch {
	case rep.Leaked():
		return &exitError{code: drillViolated, msg: fmt.Sprintf("invariant broken: %d of %d attacks leaked another tenant's rows", rep.Count(chaos.Leaked), len(rep.Attacks))}
	case ctx.Err() != nil:
		return &exitError{code: drillNotRun, msg: "drill interrupted: no leak until then, but not every attack ran"}
	case rep.Count(chaos.Failed) > 0:
		return &exitError{code: drillNotRun, msg: fmt.Sprintf("drill incomplete: %d attacks could not run, so isolation was not checked against them", rep.Count(chaos.Failed))}
	case rep.CleanupError != "":
		return &exitError{code: drillNotRun, msg: "no leak, but the drill could not remove what it made: " + rep.CleanupError}
	}
	return nil
}

// printScorecard prints one line per attack: its name, result, and what
// blocked it, leaked, or why it was skipped.
func printScorecard(w io.Writer, rep *chaos.IsolationReport) {
	fmt.Fprintf(w, "isolation drill: %s; attacker %s, neighbour %s (same shard), remote %s; sessions run as %s\n",
		rep.Duration.Round(time.Millisecond), rep.Attacker, rep.Neighbour, orNone(rep.Remote), rep.Role)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tRESULT\tBLOCKED BY / LEAKED / WHY SKIPPED")
	for _, a := range rep.Attacks {
		detail := a.BlockedBy
		switch a.Result {
		case chaos.Leaked:
			detail = a.Leak
		case chaos.Skipped, chaos.Failed:
			detail = a.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Attack, a.Result, detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d blocked, %d LEAKED, %d skipped, %d could not run\n",
		rep.Count(chaos.Blocked), rep.Count(chaos.Leaked), rep.Count(chaos.Skipped), rep.Count(chaos.Failed))
}

func orNone(s string) string {
	if s == "" {
		return "(none: one shard)"
	}
	return s
}
