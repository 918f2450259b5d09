package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runner runs PostgreSQL binaries from one installation. When the process
// runs as root it runs them as the postgres OS user, which PostgreSQL
// requires, and hands the directories they write to that user.
type runner struct {
	binDir string
	// cred is nil when the binaries run as the current user.
	cred *syscall.Credential
	// env is the environment of every binary.
	env []string
}

// newRunner prepares to run the binaries in binDir.
func newRunner(binDir string) (*runner, error) {
	r := &runner{binDir: binDir}
	home := os.Getenv("HOME")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres: running as root, and PostgreSQL refuses to run as root, but there is no OS user postgres to run it as (%v); create one (useradd --system --create-home postgres) or run as another user", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("postgres: OS user postgres: %w", err)
		}
		r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					r.cred.Groups = append(r.cred.Groups, uint32(g))
				}
			}
		}
		home = u.HomeDir
		r.env = append(r.env, "USER=postgres", "LOGNAME=postgres")
	}
	// Connection variables such as PGHOST or PGOPTIONS must not redirect or
	// change what the binaries do; messages are kept in English so errors
	// read the same everywhere.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "HOME" ||
			(r.cred != nil && (k == "USER" || k == "LOGNAME")) {
			continue
		}
		r.env = append(r.env, kv)
	}
	r.env = append(r.env, "LC_ALL=C", "HOME="+home)
	return r, nil
}

// asPostgres reports whether the binaries run as another OS user.
func (r *runner) asPostgres() bool { return r.cred != nil }

// run runs the binary name with args in the working directory dir and
// returns its combined output. The error names the command and holds the
// end of its output.
func (r *runner) run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.binDir, name), args...)
	cmd.Dir = dir
	cmd.Env = r.env
	// Its own process group: a Ctrl-C to the parent's terminal does not
	// reach a server that pg_ctl starts; the parent stops it itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: r.cred}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// A server that kept our pipe open would otherwise block Wait.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		return text, &commandError{cmd: name + " " + strings.Join(args, " "), output: tail(text, 15), err: err}
	}
	return text, nil
}

// commandError is a failed PostgreSQL binary.
type commandError struct {
	cmd    string
	output string
	err    error
}

func (e *commandError) Error() string {
	if e.output == "" {
		return fmt.Sprintf("%s: %v", e.cmd, e.err)
	}
	return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.output)
}

func (e *commandError) Unwrap() error { return e.err }

// exitCode returns the exit status of a failed command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// mkdir creates dir (and its parents) and hands it to the postgres user.
func (r *runner) mkdir(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	return r.chown(dir)
}

// writeFile writes a file that the servers read and hands it to the
// postgres user.
func (r *runner) writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return r.chown(path)
}

func (r *runner) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Chown(path, int(r.cred.Uid), int(r.cred.Gid))
}

// checkTraversable checks that the postgres user can reach dir through
// every one of its parents. The error wraps ErrDirNotTraversable and names
// the first parent that stops it.
func (r *runner) checkTraversable(dir string) error {
	if r.cred == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Created later with mode 0755.
		case err != nil:
			return fmt.Errorf("postgres: %w", err)
		case !r.canSearch(fi):
			return fmt.Errorf("%w: %s (mode %v) does not let OS user postgres through to %s; use a directory under /tmp or /var/lib (--dir), or chmod o+x %s",
				ErrDirNotTraversable, p, fi.Mode().Perm(), dir, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (r *runner) canSearch(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == r.cred.Uid:
		return perm&0o100 != 0
	case st.Gid == r.cred.Gid || slices.Contains(r.cred.Groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
