package main

import (
	"context"
	"errors"
)

// runUp is a placeholder until the subcommand is wired.
func runUp(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("up: not implemented yet")
}
