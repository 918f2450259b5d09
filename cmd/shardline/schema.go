package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shardline/shardline/api"
)

const schemaUsage = `usage: shardline schema apply FILE [--admin URL] [--admin-token-file FILE | --dir DIR] [-o table|json]
Runs FILE on every shard primary, one transaction per shard, shard by shard;
stops at the first shard that fails.`

// schemaCommand applies a SQL script to every shard primary.
type schemaCommand struct {
	Client *api.Client
	SQL    string
	JSON   bool
	Stdout io.Writer
}

func runSchema(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return usageErr("missing subcommand\n%s", schemaUsage)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.Stderr, schemaUsage)
		return &exitError{code: 0}
	}
	if args[0] != "apply" {
		return usageErr("unknown subcommand %q\n%s", args[0], schemaUsage)
	}
	fs := newFlagSet(env, "schema apply")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), schemaUsage)
		fs.PrintDefaults()
	}
	var af adminFlags
	af.register(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if err := af.check(); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("schema apply takes one FILE, got %d arguments", len(pos))
	}
	sql, err := os.ReadFile(pos[0])
	if err != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("read schema: %v", err)}
	}
	client, err := af.client(env)
	if err != nil {
		return err
	}
	c := &schemaCommand{Client: client, SQL: string(sql), JSON: af.json(), Stdout: env.Stdout}
	return c.Run(ctx)
}

// Run applies the script and prints each shard's outcome. It fails (exit 1)
// when any shard did not apply it, naming the shards that did.
func (c *schemaCommand) Run(ctx context.Context) error {
	results, err := c.Client.ApplySchema(ctx, c.SQL)
	var apiErr *api.Error
	if err != nil && !(errors.As(err, &apiErr) && len(results) > 0) {
		return adminError(c.Client, err)
	}
	if c.JSON {
		if err := printJSON(c.Stdout, api.SchemaResponse{Results: results}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
		for _, r := range results {
			switch {
			case r.OK:
				fmt.Fprintf(tw, "%s\tOK\t\n", r.Shard)
			case strings.HasPrefix(r.Error, "not run"):
				fmt.Fprintf(tw, "%s\tNOT RUN\t%s\n", r.Shard, r.Error)
			default:
				fmt.Fprintf(tw, "%s\tFAILED\t%s\n", r.Shard, r.Error)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var applied, failed, notRun []string
	for _, r := range results {
		switch {
		case r.OK:
			applied = append(applied, r.Shard)
		case strings.HasPrefix(r.Error, "not run"):
			notRun = append(notRun, r.Shard)
		default:
			failed = append(failed, r.Shard)
		}
	}
	if len(failed) == 0 && len(notRun) == 0 {
		return nil
	}
	msg := "schema change failed on " + list(failed)
	if len(notRun) > 0 {
		msg += "; not run on " + list(notRun)
	}
	msg += "; applied on " + list(applied)
	return &exitError{code: 1, msg: msg}
}

func list(shards []string) string {
	if len(shards) == 0 {
		return "no shard"
	}
	return strings.Join(shards, ", ")
}
