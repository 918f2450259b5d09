package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"text/tabwriter"

	"github.com/shardline/shardline/api"
)

// statusCommand prints the cluster's shards, members and revisions.
type statusCommand struct {
	Client *api.Client
	JSON   bool
	Stdout io.Writer
}

func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "status")
	var af adminFlags
	af.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: shardline status [--admin URL] [--admin-token-file FILE | --dir DIR] [-o table|json]")
		fs.PrintDefaults()
	}
	if err := af.parseNoArgs(fs, args); err != nil {
		return err
	}
	client, err := af.client(env)
	if err != nil {
		return err
	}
	c := &statusCommand{Client: client, JSON: af.json(), Stdout: env.Stdout}
	return c.Run(ctx)
}

// Run fetches the status and prints it.
func (c *statusCommand) Run(ctx context.Context) error {
	st, err := c.Client.Status(ctx)
	if err != nil {
		return adminError(c.Client, err)
	}
	if c.JSON {
		return printJSON(c.Stdout, st)
	}
	mapRev := "unknown"
	if st.MapRevision > 0 {
		mapRev = fmt.Sprint(st.MapRevision)
	}
	fmt.Fprintf(c.Stdout, "cluster %s   etcd revision %d   router map revision %s\n", st.Cluster, st.EtcdRevision, mapRev)
	if st.RouterDSN != "" {
		fmt.Fprintf(c.Stdout, "router %s\n", st.RouterDSN)
	}
	fmt.Fprintln(c.Stdout)
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tROLE\tMEMBER\tDSN\tSLOTS\tPINNED\tEPOCH\tHEALTH\tLAG")
	for _, s := range st.Shards {
		fmt.Fprintf(tw, "%s\tprimary\t%s\t%s\t%d\t%d\t%d\t\t\n", s.ID, s.Primary.Name, redactDSN(s.Primary.DSN), s.Slots, s.PinnedTenants, s.Epoch)
		for _, r := range s.Replicas {
			fmt.Fprintf(tw, "%s\treplica\t%s\t%s\t\t\t\t%s\t%s\n", s.ID, r.Name, redactDSN(r.DSN), healthWord(r), lagText(r))
		}
	}
	return tw.Flush()
}

var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactDSN hides a password in a URL or keyword/value DSN, so a status
// table can be pasted into a ticket.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Host != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return keywordPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

func healthWord(r api.Replica) string {
	if r.Healthy {
		return "healthy"
	}
	return "down"
}

func lagText(r api.Replica) string {
	if r.LagMS < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%dms %dB", r.LagMS, r.LagBytes)
}
