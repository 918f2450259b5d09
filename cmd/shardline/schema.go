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
       shardline schema check [--admin URL] [--admin-token-file FILE | --dir DIR] [-o table|json]
apply runs FILE on every shard primary, one transaction per shard, shard by
shard, and stops at the first shard that fails. In the same transaction it
puts row-level security on every table with the tenant column (enabled,
forced, and the shardline_tenant policy on the session's binding), unless
the table opted out: INSERT INTO shardline.rls_opt_out VALUES ('schema',
'table', 'why') in FILE.
check lists every shard's tenant tables and what is wrong with each (no
row-level security, no policy, a primary key that does not lead with the
tenant column); it exits 1 when anything is.`

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
	if args[0] != "apply" && args[0] != "check" {
		return usageErr("unknown subcommand %q\n%s", args[0], schemaUsage)
	}
	fs := newFlagSet(env, "schema "+args[0])
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
	if args[0] == "check" {
		if len(pos) != 0 {
			return usageErr("schema check takes no arguments, got %d", len(pos))
		}
		client, err := af.client(env)
		if err != nil {
			return err
		}
		c := &schemaCheckCommand{Client: client, JSON: af.json(), Stdout: env.Stdout}
		return c.Run(ctx)
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

// schemaCheckCommand lists every shard's tenant tables and their problems.
type schemaCheckCommand struct {
	Client *api.Client
	JSON   bool
	Stdout io.Writer
}

// Run prints the report: a line per tenant table and shard, with what is
// wrong. It fails (exit 1) when a shard could not be read or a table has a
// problem.
func (c *schemaCheckCommand) Run(ctx context.Context) error {
	rep, err := c.Client.CheckSchema(ctx)
	var apiErr *api.Error
	if err != nil && !(errors.As(err, &apiErr) && len(rep.Results) > 0) {
		return adminError(c.Client, err)
	}
	if c.JSON {
		if err := printJSON(c.Stdout, rep); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SHARD\tTABLE\tRLS\tPOLICY\tKEY\tSTATUS")
		for _, r := range rep.Results {
			if !r.OK {
				fmt.Fprintf(tw, "%s\t\t\t\t\tcannot read: %s\n", r.Shard, r.Error)
				continue
			}
			for _, t := range r.Tables {
				rls := "no"
				switch {
				case t.RLS && t.Forced:
					rls = "forced"
				case t.RLS:
					rls = "on"
				}
				status := "ok"
				switch {
				case len(t.Problems) > 0:
					status = strings.Join(t.Problems, "; ")
				case t.OptOut != "":
					status = "opted out: " + t.OptOut
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Shard, t.Table, rls, yesNo(t.Policy), leads(t.PrimaryKeyLeads, rep.TenantColumn), status)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err != nil {
		return &exitError{code: 1, msg: rep.Error}
	}
	return nil
}

func leads(b bool, column string) string {
	if b {
		return column + " first"
	}
	return "wrong"
}
