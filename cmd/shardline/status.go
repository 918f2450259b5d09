package main

import (
	"context"
	"errors"
)

// runStatus is a placeholder until the subcommand is wired.
func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("status: not implemented yet")
}
