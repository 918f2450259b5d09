package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/api"
)

const tenantUsage = `usage:
  shardline tenant create NAME [--shard ID] [-o table|json]
  shardline tenant show NAME [-o table|json]
  shardline tenant list [-o table|json]
  shardline tenant pin NAME [--shard ID] [-o table|json]
  shardline tenant unpin NAME [-o table|json]
Every subcommand also takes --admin URL, and --admin-token-file FILE or --dir DIR
for the admin token (see -h).`

// tenantCommand runs one tenant subcommand against the admin API.
type tenantCommand struct {
	Client *api.Client
	Action string // create, show, list, pin, unpin
	Tenant string
	Shard  string
	JSON   bool
	Stdout io.Writer
}

func runTenant(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return usageErr("missing subcommand\n%s", tenantUsage)
	}
	action := args[0]
	if action == "-h" || action == "--help" || action == "help" {
		fmt.Fprintln(env.Stderr, tenantUsage)
		return &exitError{code: 0}
	}
	fs := newFlagSet(env, "tenant "+action)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), tenantUsage)
		fs.PrintDefaults()
	}
	var af adminFlags
	af.register(fs)
	var shard string
	wantName := true
	switch action {
	case "create", "pin":
		fs.StringVar(&shard, "shard", "", "pin the tenant to this shard (default: where its slot is)")
	case "show", "unpin":
	case "list":
		wantName = false
	default:
		return usageErr("unknown subcommand %q\n%s", action, tenantUsage)
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if err := af.check(); err != nil {
		return err
	}
	client, err := af.client(env)
	if err != nil {
		return err
	}
	c := &tenantCommand{Client: client, Action: action, Shard: shard, JSON: af.json(), Stdout: env.Stdout}
	switch {
	case wantName && len(pos) != 1:
		return usageErr("tenant %s takes one tenant NAME, got %d arguments", action, len(pos))
	case !wantName && len(pos) != 0:
		return usageErr("tenant %s takes no arguments", action)
	case wantName:
		c.Tenant = pos[0]
	}
	return c.Run(ctx)
}

// Run performs the action and prints the tenants it returns.
func (c *tenantCommand) Run(ctx context.Context) error {
	var views []api.TenantView
	var err error
	var v api.TenantView
	if c.Action != "list" {
		// Refused here with the server's words: an empty id would not
		// even reach its route.
		if err := shardline.ValidateTenant(c.Tenant); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
	}
	switch c.Action {
	case "create":
		v, err = c.Client.CreateTenant(ctx, c.Tenant, c.Shard)
		views = []api.TenantView{v}
	case "show":
		v, err = c.Client.ShowTenant(ctx, c.Tenant)
		views = []api.TenantView{v}
	case "pin":
		v, err = c.Client.PinTenant(ctx, c.Tenant, c.Shard)
		views = []api.TenantView{v}
	case "unpin":
		v, err = c.Client.UnpinTenant(ctx, c.Tenant)
		views = []api.TenantView{v}
	case "list":
		views, err = c.Client.ListTenants(ctx)
	default:
		return fmt.Errorf("unknown tenant action %q", c.Action)
	}
	if err != nil {
		return adminError(c.Client, err)
	}
	if c.JSON {
		if c.Action == "list" {
			if views == nil {
				views = []api.TenantView{}
			}
			return printJSON(c.Stdout, api.TenantList{Tenants: views})
		}
		return printJSON(c.Stdout, views[0])
	}
	if c.Action == "list" && len(views) == 0 {
		_, err := fmt.Fprintln(c.Stdout, "no registered tenants (any tenant id works without registration: see 'shardline tenant show NAME')")
		return err
	}
	if len(views) == 1 && views[0].Note != "" {
		fmt.Fprintln(c.Stdout, views[0].Note)
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSHARD\tSLOT\tPINNED\tREGISTERED")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", v.Tenant, v.Shard, v.Slot, yesNo(v.Pinned), yesNo(v.Registered))
	}
	return tw.Flush()
}
