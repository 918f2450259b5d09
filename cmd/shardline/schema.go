package main

import (
	"context"
	"errors"
)

// runSchema is a placeholder until the subcommand is wired.
func runSchema(ctx context.Context, env *cliEnv, args []string) error {
	return errors.New("schema: not implemented yet")
}
