package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// cliEnv is what a subcommand may touch of the process, so tests can run a
// subcommand in process with their own writers and environment.
type cliEnv struct {
	// Stdin is read by --password-stdin, and prompted on when it is a
	// terminal; nil reads nothing.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// exitError carries a specific exit code and one line telling the user what
// to do. An empty msg prints nothing (the command already explained).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErr is exit code 2 with a message: the command line was wrong.
func usageErr(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints its usage to env.Stderr.
func newFlagSet(env *cliEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("shardline "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parseFlags parses args, mapping -h to exit 0 and other errors to exit 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return &exitError{code: 0}
	}
	if err != nil {
		return &exitError{code: 2}
	}
	return nil
}

// orDiscard returns log, or a logger that discards when log is nil (a
// command's Run called without one, as tests do).
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
