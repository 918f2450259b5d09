package bench

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunPostgres runs the whole benchmark for real, short, against a
// throwaway PostgreSQL. Both targets are the same server; the second one
// carries the tenant startup option as the router target does.
func TestRunPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dsn := startPostgres(t)
	ctx := t.Context()
	direct := Target{Name: "direct", DSN: dsn}
	router := Target{Name: "router", DSN: dsn, Env: []string{"PGOPTIONS=-c shardline.tenant=t1"}}

	pb, err := NewPgbench("", slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Check(ctx, direct); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Check before Init = %v, want ErrNotInitialized", err)
	}
	if err := Init(ctx, router, 1); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := pb.Check(ctx, direct); err != nil {
		t.Fatalf("Check after Init: %v", err)
	}

	var progress strings.Builder
	rep, err := Run(ctx, Config{
		Targets:  []Target{direct, router},
		Modes:    []string{ModeSimple, ModeExtended, ModePrepared},
		Clients:  2,
		Duration: time.Second,
		Rounds:   1,
		Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("progress:\n%s", progress.String())
	if n := strings.Count(progress.String(), "\n"); n != 6 {
		t.Errorf("%d progress lines, want 6 (3 modes x 2 targets)", n)
	}
	if len(rep.Modes) != 3 || rep.Baseline != "direct" || rep.Clients != 2 || rep.Threads != 2 || !strings.Contains(rep.Pgbench, "pgbench") {
		t.Errorf("report header = %+v", rep)
	}
	for _, m := range rep.Modes {
		for _, tr := range m.Targets {
			if len(tr.Runs) != 1 || tr.TPSMedian <= 0 || tr.LatencyMedianMs <= 0 || tr.TPSRatio <= 0 || tr.Runs[0].Transactions <= 0 {
				t.Errorf("mode %s target %s: %+v", m.Mode, tr.Target, tr)
			}
		}
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteRatios(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", table.String())
	if strings.Count(table.String(), "router/direct TPS ratio: ") != 3 {
		t.Errorf("want 3 ratio lines:\n%s", table.String())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("Marshal: %v", err)
	}
}

// TestRunFailureNamesTarget checks that a target pgbench cannot reach ends
// Run with an error naming the target, the mode and pgbench's complaint,
// and that the runs finished before it are kept.
func TestRunFailureNamesTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dsn := startPostgres(t)
	ctx := t.Context()
	good := Target{Name: "direct", DSN: dsn}
	if err := Init(ctx, good, 1); err != nil {
		t.Fatalf("Init: %v", err)
	}
	closed := Target{Name: "nowhere", DSN: "postgres://postgres@127.0.0.1:" + strconv.Itoa(freePort(t)) + "/postgres?sslmode=disable&connect_timeout=5"}
	rep, err := Run(ctx, Config{Targets: []Target{good, closed}, Modes: []string{ModePrepared}, Clients: 1, Duration: time.Second, Rounds: 1})
	var pe *PgbenchError
	if !errors.As(err, &pe) {
		t.Fatalf("Run = %v, want a *PgbenchError", err)
	}
	if pe.Target != "nowhere" || pe.Mode != "prepared" || pe.Op != "run" || pe.ExitCode == 0 {
		t.Errorf("PgbenchError = %+v", pe)
	}
	if msg := err.Error(); !strings.Contains(msg, `target "nowhere" mode prepared`) || !strings.Contains(msg, "Connection refused") {
		t.Errorf("error message %q lacks the target, mode or pgbench's stderr", msg)
	}
	if rep == nil || len(rep.Modes[0].Targets[0].Runs) != 1 || rep.Modes[0].Targets[0].TPSMedian <= 0 {
		t.Errorf("partial report = %+v, want the direct run kept", rep)
	}
}

// TestRunCancel checks that cancelling the context stops pgbench promptly.
func TestRunCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dsn := startPostgres(t)
	target := Target{Name: "direct", DSN: dsn}
	if err := Init(t.Context(), target, 1); err != nil {
		t.Fatalf("Init: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Config{Targets: []Target{target}, Clients: 1, Duration: 30 * time.Second, Rounds: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
}
