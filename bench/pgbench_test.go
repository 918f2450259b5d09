package bench

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestFindPgbench(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "10", "15", "16"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if v != "16" { // 16 has the directory but no binary
			if err := os.WriteFile(filepath.Join(dir, "pgbench"), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	glob := filepath.Join(root, "*", "bin", "pgbench")
	// A lookPath like exec.LookPath on an empty PATH: only paths with a
	// slash to existing files resolve.
	lookPath := func(p string) (string, error) {
		if !filepath.IsAbs(p) {
			return "", fs.ErrNotExist
		}
		if _, err := os.Stat(p); err != nil {
			return "", err
		}
		return p, nil
	}

	got, err := findPgbench("", lookPath, glob)
	if want := filepath.Join(root, "15", "bin", "pgbench"); err != nil || got != want {
		t.Errorf("findPgbench = %q, %v; want %q", got, err, want)
	}
	explicit := filepath.Join(root, "10", "bin", "pgbench")
	if got, err := findPgbench(explicit, lookPath, glob); err != nil || got != explicit {
		t.Errorf("findPgbench(%q) = %q, %v", explicit, got, err)
	}
	if _, err := findPgbench("/nonexistent/pgbench", lookPath, glob); !errors.Is(err, ErrPgbenchNotFound) {
		t.Errorf("findPgbench of a missing path: %v, want ErrPgbenchNotFound", err)
	}
	if _, err := findPgbench("", lookPath, filepath.Join(root, "none", "pgbench")); !errors.Is(err, ErrPgbenchNotFound) {
		t.Errorf("findPgbench without any: %v, want ErrPgbenchNotFound", err)
	}
}

func TestPgbenchErrorMessage(t *testing.T) {
	err := error(&PgbenchError{
		Op: "run", Target: "router", Workload: "select-prepared", ExitCode: 2,
		Stderr: []string{"pgbench: error: client 0 aborted", "pgbench: error: Run was aborted; the above results are incomplete."},
		Err:    ErrAborted,
	})
	want := `pgbench run target "router" workload select-prepared: bench: pgbench run aborted (exit status 2): pgbench: error: client 0 aborted | pgbench: error: Run was aborted; the above results are incomplete.`
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	if !errors.Is(err, ErrAborted) {
		t.Error("errors.Is(err, ErrAborted) = false")
	}
}
