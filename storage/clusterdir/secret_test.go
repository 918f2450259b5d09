package clusterdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecret: a missing secret is made once (mode 0600, 2n hex digits) and
// read back unchanged; a bad file is an error naming it, not replaced.
func TestSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.token")
	if _, err := ReadSecret(path, "x token"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	s, err := Secret(path, "x token", 16)
	if err != nil || len(s) != 32 || strings.Trim(s, "0123456789abcdef") != "" {
		t.Fatalf("made %q, %v", s, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v, %v", fi, err)
	}
	if again, err := Secret(path, "x token", 16); err != nil || again != s {
		t.Fatalf("second read %q, %v; want %q", again, err, s)
	}
	if err := os.WriteFile(path, []byte("two words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Secret(path, "x token", 16); err == nil || !strings.Contains(err.Error(), "x token file "+path) {
		t.Fatalf("bad file: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left temporary files: %v", entries)
	}
}
