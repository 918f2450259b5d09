package clusterdir_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/shardline/shardline/storage/clusterdir"
)

// TestLockNamesItsHolder takes a directory's lock twice: the second try
// fails at once naming the holder's pid and addresses; after Release the
// directory can be taken again. (flock conflicts between two opens in one
// process as between two processes.)
func TestLockNamesItsHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := clusterdir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetAddrs("127.0.0.1:7432", "http://127.0.0.1:7480"); err != nil {
		t.Fatal(err)
	}
	_, err = clusterdir.Acquire(dir)
	var inUse *clusterdir.InUseError
	if !errors.Is(err, clusterdir.ErrInUse) || !errors.As(err, &inUse) {
		t.Fatalf("second Acquire = %v, want an InUseError", err)
	}
	want := fmt.Sprintf("cluster directory %s is in use by a running 'shardline up' (pid %d, router 127.0.0.1:7432, admin http://127.0.0.1:7480); ", dir, os.Getpid())
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "--dir") {
		t.Errorf("second Acquire: %q, want it to start %q and name --dir", err, want)
	}
	l.Release()
	l.Release() // harmless
	l, err = clusterdir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l.Release()
}
