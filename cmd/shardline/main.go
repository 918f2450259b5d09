// Command shardline runs and operates a Shardline cluster: `shardline up`
// starts the embedded one-machine cluster; the other subcommands talk to its
// admin API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand. It only wires flags to a component's Run.
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, env *cliEnv, args []string) error
}

func commands() []command {
	return []command{
		{"up", "start the embedded cluster (etcd, PostgreSQL shards, manager, router)", runUp},
		{"router", "run only a router, against a running cluster's etcd", runRouter},
		{"status", "show shards, members and the router's map revision", runStatus},
		{"tenant", "create, show and list tenants", runTenant},
		{"user", "add, list, remove users of the router and change their passwords", runUser},
		{"schema", "apply a SQL file to every shard primary", runSchema},
		{"sql", "run an operator's query on one shard, across tenants (read-only unless --write)", runSQL},
		{"bench", "pgbench side by side: PostgreSQL, PgBouncer and the router", runBench},
		{"drill", "run a drill that checks an invariant (replica-lag, isolation)", runDrill},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal asks the command to stop within its bound; after it
	// the signals' default action is back, so a second one ends the
	// process at once.
	context.AfterFunc(ctx, stop)
	env := &cliEnv{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(dispatch(ctx, env, os.Args[1:]))
}

// dispatch runs the subcommand named by args[0] and returns the exit code.
func dispatch(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		if err == nil {
			return 0
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintf(env.Stderr, "shardline %s: %s\n", c.name, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintf(env.Stderr, "shardline %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(env.Stderr, "shardline: unknown command %q; run 'shardline help' for the list\n", args[0])
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: shardline COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'shardline COMMAND -h' for a command's flags.")
}
