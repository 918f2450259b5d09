package bench

import (
	"context"
	"fmt"
)

// Run benchmarks every target of cfg (after WithDefaults and Validate): for
// each mode, for each round, each target in order, one pgbench run of
// cfg.Duration. Alternating targets within a round spreads drift of the
// machine (caches, CPU frequency, autovacuum) over all of them. One line per
// run goes to cfg.Progress.
//
// The first failing pgbench run ends Run with a *PgbenchError naming the
// target and mode; a cancelled ctx ends it with an error wrapping the
// context's cause. In both cases the report of the runs finished so far is
// returned along with the error (nil only if the config is invalid or
// pgbench is missing).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pb, err := NewPgbench(cfg.PgbenchPath, cfg.Logger)
	if err != nil {
		return nil, err
	}
	version, err := pb.Version(ctx)
	if err != nil {
		return nil, err
	}
	rep := newReport(cfg, version)
	defer rep.summarize()
	for mi, mode := range cfg.Modes {
		for round := 1; round <= cfg.Rounds; round++ {
			for ti, t := range cfg.Targets {
				out, err := pb.Bench(ctx, t, mode, cfg.Workload, cfg.Clients, cfg.Duration)
				if err != nil {
					return rep, err
				}
				rep.Modes[mi].Targets[ti].Runs = append(rep.Modes[mi].Targets[ti].Runs, RunResult{Round: round, Output: out})
				fmt.Fprintf(cfg.Progress, "%-8s round %d/%d  %-*s %12.1f tps %9.3f ms avg %6d failed\n",
					mode, round, cfg.Rounds, rep.nameWidth(), t.Name, out.TPS, out.LatencyAvgMs, out.Failed)
			}
		}
	}
	return rep, nil
}

// Init runs pgbench -i -s SCALE -q against target with the pgbench found as
// FindPgbench("") finds it; see (*Pgbench).Init.
func Init(ctx context.Context, target Target, scale int) error {
	pb, err := NewPgbench("", nil)
	if err != nil {
		return err
	}
	return pb.Init(ctx, target, scale)
}
