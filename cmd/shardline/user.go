package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/auth"
)

const userUsage = `usage:
  shardline user add NAME [--tenant T ...] [--kind app|admin] [--password-file F | --password-stdin] [-o table|json]
  shardline user list [-o table|json]
  shardline user remove NAME [-o table|json]
  shardline user passwd NAME [--password-file F | --password-stdin] [-o table|json]
Without --password-file or --password-stdin, add and passwd prompt on the terminal.
The password never leaves this process: the admin API gets its SCRAM-SHA-256 verifier.
A user with --tenant acts only as those tenants (one: every session is acme's without
options); --kind admin makes a user that may name any tenant.
Every subcommand also takes --admin URL (the admin API), and --admin-token-file FILE or --dir DIR
for the admin token (see -h).`

// userCommand runs one user subcommand against the admin API.
type userCommand struct {
	Client  *api.Client
	Action  string // add, list, remove, passwd
	Name    string
	Tenants []string
	Admin   bool
	// Password is the password of add and passwd (already read).
	Password string
	JSON     bool
	Stdout   io.Writer
}

// tenantList is a repeatable --tenant flag.
type tenantList []string

func (l *tenantList) String() string     { return strings.Join(*l, ",") }
func (l *tenantList) Set(v string) error { *l = append(*l, v); return nil }

func runUser(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return usageErr("missing subcommand\n%s", userUsage)
	}
	action := args[0]
	if action == "-h" || action == "--help" || action == "help" {
		fmt.Fprintln(env.Stderr, userUsage)
		return &exitError{code: 0}
	}
	fs := newFlagSet(env, "user "+action)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), userUsage)
		fs.PrintDefaults()
	}
	var af adminFlags
	af.register(fs)
	var tenants tenantList
	kind := string(shardline.UserApp)
	var pw passwordSource
	wantName, wantPassword := true, false
	switch action {
	case "add":
		fs.Var(&tenants, "tenant", "bind the user to this tenant (repeat for several); its sessions act only as them")
		fs.StringVar(&kind, "kind", string(shardline.UserApp), "app, or admin: a user that may name any tenant and is bound to none (--admin is the admin API's URL)")
		wantPassword = true
	case "passwd":
		wantPassword = true
	case "remove":
	case "list":
		wantName = false
	default:
		return usageErr("unknown subcommand %q\n%s", action, userUsage)
	}
	if wantPassword {
		fs.StringVar(&pw.file, "password-file", "", "read the password from the first line of `file`")
		fs.BoolVar(&pw.stdin, "password-stdin", false, "read the password from the first line of standard input")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if err := af.check(); err != nil {
		return err
	}
	if kind != string(shardline.UserApp) && kind != string(shardline.UserAdmin) {
		return usageErr("--kind %q: want app or admin", kind)
	}
	admin := kind == string(shardline.UserAdmin)
	c := &userCommand{Action: action, Tenants: tenants, Admin: admin, JSON: af.json(), Stdout: env.Stdout}
	switch {
	case wantName && len(pos) != 1:
		return usageErr("user %s takes one user NAME, got %d arguments", action, len(pos))
	case !wantName && len(pos) != 0:
		return usageErr("user %s takes no arguments", action)
	case wantName:
		c.Name = pos[0]
	}
	if admin && len(tenants) > 0 {
		return usageErr("--kind admin and --tenant: an admin user may name any tenant and is bound to none; bind an app user instead")
	}
	if wantName {
		if err := shardline.ValidateUserName(c.Name); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	for _, t := range tenants {
		if err := shardline.ValidateTenant(t); err != nil {
			return &exitError{code: 2, msg: "--tenant: " + err.Error()}
		}
	}
	if c.Client, err = af.client(env); err != nil {
		return err
	}
	if wantPassword {
		if c.Password, err = pw.read(env); err != nil {
			return err
		}
	}
	return c.Run(ctx)
}

// Run performs the action and prints the users it returns.
func (c *userCommand) Run(ctx context.Context) error {
	var views []api.UserView
	var v api.UserView
	var err error
	verifier := func() (string, error) {
		v, err := auth.NewVerifier(c.Password, 0)
		if err != nil {
			return "", &exitError{code: 1, msg: strings.TrimPrefix(err.Error(), "auth: ")}
		}
		return v.String(), nil
	}
	note := ""
	switch c.Action {
	case "add":
		ver, verr := verifier()
		if verr != nil {
			return verr
		}
		kind := string(shardline.UserApp)
		if c.Admin {
			kind = string(shardline.UserAdmin)
		}
		v, err = c.Client.CreateUser(ctx, c.Name, kind, c.Tenants, ver)
		views, note = []api.UserView{v}, "added user "+c.Name
	case "passwd":
		ver, verr := verifier()
		if verr != nil {
			return verr
		}
		v, err = c.Client.SetUserVerifier(ctx, c.Name, ver)
		views, note = []api.UserView{v}, "changed the password of user "+c.Name+" (sessions open now stay open)"
	case "remove":
		v, err = c.Client.RemoveUser(ctx, c.Name)
		views, note = []api.UserView{v}, "removed user "+c.Name+" (sessions open now stay open; new ones are refused)"
	case "list":
		views, err = c.Client.ListUsers(ctx)
	default:
		return fmt.Errorf("unknown user action %q", c.Action)
	}
	if err != nil {
		return adminError(c.Client, err)
	}
	if c.JSON {
		if c.Action == "list" {
			if views == nil {
				views = []api.UserView{}
			}
			return printJSON(c.Stdout, api.UserList{Users: views})
		}
		return printJSON(c.Stdout, views[0])
	}
	if c.Action == "list" && len(views) == 0 {
		_, err := fmt.Fprintln(c.Stdout, "no users ('shardline user add NAME' adds one)")
		return err
	}
	if note != "" {
		fmt.Fprintln(c.Stdout, note)
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tKIND\tTENANTS\tCREATED")
	for _, v := range views {
		tenants := strings.Join(v.Tenants, ",")
		if tenants == "" {
			tenants = "any"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Kind, tenants, v.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}
