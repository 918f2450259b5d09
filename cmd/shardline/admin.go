package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/shardline/shardline/api"
)

// defaultAdminURL is where `shardline up` serves the admin API by default.
const defaultAdminURL = "http://127.0.0.1:6480"

// adminFlags are the flags every admin API subcommand takes.
type adminFlags struct {
	admin     string
	tokenFile string
	dir       string
	output    string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.admin, "admin", "", "admin API URL (default $SHARDLINE_ADMIN, else "+defaultAdminURL+")")
	fs.StringVar(&a.tokenFile, "admin-token-file", "", "`file` holding the admin token to send (needed when the admin API is not on loopback). "+
		"The first of these is sent: this file, $SHARDLINE_ADMIN_TOKEN (the token itself), DIR/"+adminTokenName+" of --dir; else none")
	fs.StringVar(&a.dir, "dir", "", "cluster directory of a 'shardline up' on this machine, whose admin token ("+adminTokenName+") to send (default $SHARDLINE_DIR)")
	fs.StringVar(&a.output, "o", "table", "output format: table or json")
}

// check validates the flags after parsing.
func (a *adminFlags) check() error {
	if a.output != "table" && a.output != "json" {
		return usageErr("-o %q: want table or json", a.output)
	}
	return nil
}

func (a *adminFlags) json() bool { return a.output == "json" }

// url resolves the admin API URL: --admin, else $SHARDLINE_ADMIN, else the
// default. A bare host:port (as `shardline up --admin` takes) gets http://.
func (a *adminFlags) url(env *cliEnv) string {
	u := a.admin
	if u == "" && env.Getenv != nil {
		u = env.Getenv("SHARDLINE_ADMIN")
	}
	if u == "" {
		u = defaultAdminURL
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/")
}

// token returns the admin token to send: from --admin-token-file, else
// $SHARDLINE_ADMIN_TOKEN, else the admin.token of --dir or $SHARDLINE_DIR;
// "" when none of them is given. A file that cannot be read is exit
// status 1.
func (a *adminFlags) token(env *cliEnv) (string, error) {
	getenv := func(k string) string {
		if env.Getenv == nil {
			return ""
		}
		return env.Getenv(k)
	}
	file, what := a.tokenFile, "--admin-token-file"
	if file == "" {
		if t := strings.TrimSpace(getenv("SHARDLINE_ADMIN_TOKEN")); t != "" {
			return t, nil
		}
		dir, from := a.dir, "--dir"
		if dir == "" {
			dir, from = getenv("SHARDLINE_DIR"), "$SHARDLINE_DIR"
		}
		if dir == "" {
			return "", nil
		}
		file, what = filepath.Join(dir, adminTokenName), from
	}
	token, err := readTokenFile(file)
	if err != nil {
		return "", &exitError{code: 1, msg: fmt.Sprintf("%s: %v", what, err)}
	}
	return token, nil
}

// client returns the admin API client the flags and the environment
// describe, sending the token they give.
func (a *adminFlags) client(env *cliEnv) (*api.Client, error) {
	token, err := a.token(env)
	if err != nil {
		return nil, err
	}
	return api.NewClient(a.url(env), &http.Client{}).WithToken(token), nil
}

// adminError turns a client error into what the user should read: one line
// and exit code 1.
func adminError(c *api.Client, err error) error {
	var apiErr *api.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrUnreachable):
		return &exitError{code: 1, msg: fmt.Sprintf("cannot reach the admin API at %s: start the cluster with 'shardline up' or set --admin/SHARDLINE_ADMIN", c.BaseURL())}
	case errors.As(err, &apiErr) && apiErr.Unauthorized():
		reason, _, _ := strings.Cut(apiErr.Message, " (hint:")
		return &exitError{code: 1, msg: fmt.Sprintf("the admin API at %s refused the request (%s): send the cluster's admin token with --admin-token-file FILE, "+
			"$SHARDLINE_ADMIN_TOKEN, or --dir DIR for a 'shardline up' on this machine (it keeps the token in DIR/%s)", c.BaseURL(), reason, adminTokenName)}
	case errors.As(err, &apiErr):
		return &exitError{code: 1, msg: apiErr.Message}
	default:
		return &exitError{code: 1, msg: err.Error()}
	}
}

// parseInterspersed parses args into fs allowing flags after positional
// arguments ("tenant create acme --shard s2"), and returns the positional
// ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseNoArgs parses the flags of an admin subcommand that takes no
// positional arguments and checks them.
func (a *adminFlags) parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	return a.check()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
