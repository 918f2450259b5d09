package postgres

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// serverBinaries are the programs a local cluster needs, all from one
// installation.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres", "pg_basebackup"}

// installHint tells how to get the server binaries.
const installHint = "install PostgreSQL: Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15"

// FindBinDir finds the directory holding initdb, pg_ctl, postgres and
// pg_basebackup: first the directories of $PATH (following a symlinked
// initdb to the directory it points into), then `pg_config --bindir`, then
// the newest /usr/lib/postgresql/<version>/bin. The error wraps ErrNoBinaries
// and says how to install PostgreSQL.
func FindBinDir() (string, error) {
	return findBinDir(os.Getenv("PATH"), "/usr/lib/postgresql")
}

func findBinDir(pathEnv, libRoot string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		if hasServerBinaries(dir) {
			return filepath.Abs(dir)
		}
		// Distributions link a few programs into /usr/bin or
		// /usr/local/bin; the rest sit beside the link's target.
		if target, err := filepath.EvalSymlinks(filepath.Join(dir, "initdb")); err == nil {
			if real := filepath.Dir(target); hasServerBinaries(real) {
				return real, nil
			}
		}
	}
	if pgConfig := lookPath("pg_config", pathEnv); pgConfig != "" {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); dir != "" && hasServerBinaries(dir) {
				return dir, nil
			}
		}
	}
	if dir := newestVersionDir(libRoot); dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("%w (%s) in $PATH, `pg_config --bindir` or %s/*/bin; %s",
		ErrNoBinaries, strings.Join(serverBinaries, ", "), libRoot, installHint)
}

// checkBinDir reports whether dir, given by the caller, is usable.
func checkBinDir(dir string) error {
	if !hasServerBinaries(dir) {
		return fmt.Errorf("%w: %s lacks one of %s; %s",
			ErrNoBinaries, dir, strings.Join(serverBinaries, ", "), installHint)
	}
	return nil
}

// newestVersionDir returns root/<version>/bin for the highest version that
// holds every server binary, comparing versions numerically (15 > 9.6).
func newestVersionDir(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	type candidate struct {
		version []int
		dir     string
	}
	var cands []candidate
	for _, e := range entries {
		v, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		if dir := filepath.Join(root, e.Name(), "bin"); hasServerBinaries(dir) {
			cands = append(cands, candidate{v, dir})
		}
	}
	if len(cands) == 0 {
		return ""
	}
	best := slices.MaxFunc(cands, func(a, b candidate) int { return slices.Compare(a.version, b.version) })
	return best.dir
}

// parseVersion parses "15" or "9.6" into its numeric parts.
func parseVersion(s string) ([]int, bool) {
	var v []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

// lookPath finds the executable name in the directories of pathEnv.
func lookPath(name, pathEnv string) string {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func hasServerBinaries(dir string) bool {
	for _, name := range serverBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}
