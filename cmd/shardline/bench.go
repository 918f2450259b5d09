package main

import (
	"context"
	"errors"
)

// runBench is a placeholder until the subcommand is wired.
func runBench(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("bench: not implemented yet")
}
