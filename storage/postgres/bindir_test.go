package postgres

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range serverBinaries {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinDir() = %s, which lacks %s", dir, name)
		}
	}
}

// fakeInstall makes dir hold executable stand-ins for the server binaries.
func fakeInstall(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range serverBinaries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindBinDirOrder(t *testing.T) {
	root := t.TempDir()
	lib := filepath.Join(root, "lib")
	for _, v := range []string{"9.6", "15", "12", "notaversion"} {
		fakeInstall(t, filepath.Join(lib, v, "bin"))
	}
	empty := filepath.Join(root, "empty")
	os.MkdirAll(empty, 0o755)

	// No $PATH hit: the highest version, compared as numbers.
	got, err := findBinDir(empty, lib)
	if err != nil || got != filepath.Join(lib, "15", "bin") {
		t.Fatalf("findBinDir = %q, %v; want lib/15/bin", got, err)
	}

	// A $PATH directory holding everything wins.
	onPath := filepath.Join(root, "path")
	fakeInstall(t, onPath)
	if got, _ := findBinDir(empty+string(os.PathListSeparator)+onPath, lib); got != onPath {
		t.Fatalf("findBinDir = %q, want %q", got, onPath)
	}

	// A $PATH directory with only a symlinked initdb leads to its target.
	links := filepath.Join(root, "links")
	os.MkdirAll(links, 0o755)
	if err := os.Symlink(filepath.Join(lib, "12", "bin", "initdb"), filepath.Join(links, "initdb")); err != nil {
		t.Fatal(err)
	}
	if got, _ := findBinDir(links, lib); got != filepath.Join(lib, "12", "bin") {
		t.Fatalf("findBinDir via symlink = %q, want lib/12/bin", got)
	}

	// Nothing anywhere: the error says how to install. (pg_config may be on
	// the real $PATH, so only an empty $PATH is sure to find nothing.)
	if _, err := findBinDir("", filepath.Join(root, "nolib")); !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("findBinDir with nothing = %v", err)
	}
}

func TestValidate(t *testing.T) {
	c := LocalConfig{Dir: "x"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Shards != 2 || c.Replicas != 1 || c.Database != "app" || c.BasePort != 15432 || !filepath.IsAbs(c.Dir) || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	none := LocalConfig{Dir: "x", Replicas: NoReplicas}
	for range 2 { // idempotent
		if err := none.Validate(); err != nil || none.replicas() != 0 {
			t.Fatalf("NoReplicas: %v, replicas() = %d", err, none.replicas())
		}
	}
	for _, bad := range []LocalConfig{
		{},
		{Dir: "x", Shards: 65},
		{Dir: "x", Shards: -1},
		{Dir: "x", Replicas: 9},
		{Dir: "x", Replicas: -2},
		{Dir: "x", Database: "App; DROP"},
		{Dir: "x", BasePort: 80},
		{Dir: "x", BasePort: 65535},
		{Dir: "x", Conf: map[string]string{"port": "1"}},
		{Dir: "x", Conf: map[string]string{"work_mem": "1\nport=2"}},
		{Dir: "x", Conf: map[string]string{"a b": "1"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}
