package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/bench"
)

const benchUsage = `usage: shardline bench --direct DSN [flags]

Runs pgbench (select-only) through the router and against the tenant's shard
primary directly, alternating the two over several rounds per query mode, and
prints median TPS and latency per target and the router/direct TPS ratio.

Both targets run with PGOPTIONS='-c shardline.tenant=TENANT', so sessions on
the shard see the same tenant setting the router would bind.

--init: "auto" (the default) runs pgbench -i -s SCALE through the router only
when the pgbench tables are missing; --init (true) always runs it first, which
drops and refills the tables; --init=false never does.

Flags:
`

// benchCommand is `shardline bench` with its flags parsed; Run does the work.
type benchCommand struct {
	Router   string
	Direct   string
	Tenant   string
	Clients  int
	Duration time.Duration
	Rounds   int
	Modes    []string
	Init     initMode
	Scale    int
	Pgbench  string
	Output   string // "text" or "json"

	Stdout io.Writer
	Stderr io.Writer
}

func runBench(ctx context.Context, env *cliEnv, args []string) error {
	c := benchCommand{Init: initAuto, Stdout: env.Stdout, Stderr: env.Stderr}
	var modes string
	fs := newFlagSet(env, "bench")
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Router, "router", "postgres://postgres@127.0.0.1:6432/app?sslmode=disable", "router `DSN`")
	fs.StringVar(&c.Direct, "direct", "", "`DSN` of the primary of the shard that holds the tenant (required)")
	fs.StringVar(&c.Tenant, "tenant", "t1", "tenant to run as")
	fs.IntVar(&c.Clients, "clients", bench.DefaultClients, "pgbench clients (-c); threads are min(clients, 2)")
	fs.DurationVar(&c.Duration, "duration", bench.DefaultDuration, "length of each pgbench run, whole seconds")
	fs.IntVar(&c.Rounds, "rounds", bench.DefaultRounds, "runs per target and mode; the report gives medians")
	fs.StringVar(&modes, "modes", strings.Join(bench.DefaultModes(), ","), "comma-separated query modes: simple, extended, prepared")
	fs.Var(&c.Init, "init", "create the pgbench tables through the router first: auto, true or false (default auto)")
	fs.IntVar(&c.Scale, "scale", 1, "pgbench scale factor for --init")
	fs.StringVar(&c.Pgbench, "pgbench", "", "pgbench binary (default: on PATH, then /usr/lib/postgresql/*/bin)")
	fs.StringVar(&c.Output, "o", "text", "output format: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	for m := range strings.SplitSeq(modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.Modes = append(c.Modes, m)
		}
	}
	return c.Run(ctx)
}

// Run checks the command's settings (a bad one is a usage error), prepares
// the tables, runs the benchmark and writes the report.
func (c *benchCommand) Run(ctx context.Context) error {
	if c.Direct == "" {
		// TODO(bench): resolve the tenant's shard primary from the admin
		// API (ShowTenant, then Status) once package api has its client.
		return usageErr("--direct is required: the DSN of the primary of the shard that holds tenant %s "+
			"(looking it up through the admin API is not wired yet)", c.Tenant)
	}
	if err := shardline.ValidateTenant(c.Tenant); err != nil {
		return usageErr("--tenant: %v", err)
	}
	if c.Output != "text" && c.Output != "json" {
		return usageErr("-o %q: want text or json", c.Output)
	}
	if c.Scale < 1 {
		return usageErr("--scale %d: want at least 1", c.Scale)
	}
	tenantEnv := []string{"PGOPTIONS=-c shardline.tenant=" + c.Tenant}
	direct := bench.Target{Name: "direct", DSN: c.Direct, Env: tenantEnv}
	router := bench.Target{Name: "router", DSN: c.Router, Env: tenantEnv}
	logger := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := bench.Config{
		Targets:     []bench.Target{direct, router},
		Modes:       c.Modes,
		Clients:     c.Clients,
		Duration:    c.Duration,
		Rounds:      c.Rounds,
		Workload:    bench.WorkloadSelectOnly,
		PgbenchPath: c.Pgbench,
		Logger:      logger,
		Progress:    c.Stderr,
	}
	// Zero flag values are not defaults here: --rounds 0 is a mistake.
	if err := cfg.Validate(); err != nil {
		return usageErr("%v", strings.TrimPrefix(err.Error(), bench.ErrInvalidConfig.Error()+": "))
	}

	pb, err := bench.NewPgbench(c.Pgbench, logger)
	if err != nil {
		return err
	}
	if err := c.prepare(ctx, pb, router); err != nil {
		return err
	}
	if err := pb.Check(ctx, direct); err != nil {
		if errors.Is(err, bench.ErrNotInitialized) {
			return fmt.Errorf("%w; --direct must reach the database of the primary of the shard that holds tenant %s, "+
				"where the router put the pgbench tables", err, c.Tenant)
		}
		return err
	}

	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if rep != nil && c.Output == "text" && hasRuns(rep) {
			fmt.Fprintln(c.Stdout, "partial results (the benchmark did not finish):")
			_ = rep.WriteTable(c.Stdout)
		}
		return err
	}
	if c.Output == "json" {
		return rep.WriteJSON(c.Stdout)
	}
	if err := rep.WriteTable(c.Stdout); err != nil {
		return err
	}
	return rep.WriteRatios(c.Stdout)
}

// prepare creates the pgbench tables through the router as c.Init says, and
// checks that the router serves them.
func (c *benchCommand) prepare(ctx context.Context, pb *bench.Pgbench, router bench.Target) error {
	if c.Init == initAuto {
		err := pb.Check(ctx, router)
		if !errors.Is(err, bench.ErrNotInitialized) {
			return err
		}
		fmt.Fprintf(c.Stderr, "pgbench tables missing for tenant %s; creating them through the router (pgbench -i -s %d)\n", c.Tenant, c.Scale)
	}
	if c.Init != initNever {
		if err := pb.Init(ctx, router, c.Scale); err != nil {
			return err
		}
	}
	return pb.Check(ctx, router)
}

func hasRuns(r *bench.Report) bool {
	for _, m := range r.Modes {
		for _, t := range m.Targets {
			if len(t.Runs) > 0 {
				return true
			}
		}
	}
	return false
}

// initMode is the --init flag: a boolean flag (--init, --init=false) that
// also accepts "auto".
type initMode int

const (
	initAuto initMode = iota
	initAlways
	initNever
)

func (m *initMode) String() string {
	switch *m {
	case initAlways:
		return "true"
	case initNever:
		return "false"
	}
	return "auto"
}

func (m *initMode) Set(s string) error {
	if s == "auto" {
		*m = initAuto
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want auto, true or false")
	}
	if b {
		*m = initAlways
	} else {
		*m = initNever
	}
	return nil
}

func (m *initMode) IsBoolFlag() bool { return true }
