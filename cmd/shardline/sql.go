package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shardline/shardline/api"
)

const sqlUsage = `usage: shardline sql --shard SHARD [--write] [--admin URL] [--admin-token-file FILE | --dir DIR] [-o table|json] SQL
runs SQL on the shard's primary as the admin, for operators: it reads every
tenant's rows (row-level security does not bind the admin). One statement in
a read-only transaction unless --write, which runs the script and commits.
At most 1000 rows are shown.`

// sqlCommand is an operator's query of one shard through the admin API.
type sqlCommand struct {
	Client *api.Client
	Shard  string
	SQL    string
	Write  bool
	JSON   bool
	Stdout io.Writer
}

func runSQL(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "sql")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), sqlUsage)
		fs.PrintDefaults()
	}
	c := &sqlCommand{Stdout: env.Stdout}
	fs.StringVar(&c.Shard, "shard", "", "the shard whose primary runs the query (shardline status lists them)")
	fs.BoolVar(&c.Write, "write", false, "allow writes: run the script in a read-write transaction and commit it")
	var af adminFlags
	af.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := af.check(); err != nil {
		return err
	}
	if c.Shard == "" {
		return usageErr("--shard is required\n%s", sqlUsage)
	}
	if len(pos) != 1 {
		return usageErr("sql takes one SQL argument (quote it), got %d\n%s", len(pos), sqlUsage)
	}
	c.SQL, c.JSON = pos[0], af.json()
	if c.Client, err = af.client(env); err != nil {
		return err
	}
	return c.Run(ctx)
}

// Run runs the query and prints its rows: a table with NULL for nulls, or
// the API's JSON.
func (c *sqlCommand) Run(ctx context.Context) error {
	res, err := c.Client.Query(ctx, c.Shard, c.SQL, c.Write)
	if err != nil {
		return adminError(c.Client, err)
	}
	if c.JSON {
		return printJSON(c.Stdout, res)
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	if len(res.Columns) > 0 {
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(res.Columns, "\t")))
		for _, row := range res.Rows {
			vals := make([]string, len(row))
			for i, v := range row {
				vals[i] = "NULL"
				if v != nil {
					vals[i] = *v
				}
			}
			fmt.Fprintln(tw, strings.Join(vals, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Truncated {
		fmt.Fprintf(c.Stdout, "(%s; only the first %d rows shown)\n", res.Tag, len(res.Rows))
	} else {
		fmt.Fprintf(c.Stdout, "(%s)\n", res.Tag)
	}
	return nil
}
