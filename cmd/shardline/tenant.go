package main

import (
	"context"
	"errors"
)

// runTenant is a placeholder until the subcommand is wired.
func runTenant(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("tenant: not implemented yet")
}
