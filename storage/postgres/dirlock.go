package postgres

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirLock is an exclusive flock on a cluster directory, held from
// StartLocal to Stop, so two processes never run one cluster. The kernel
// drops it when the holder dies.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres: lock cluster directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		data, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is run by process %s; stop it first or use another --dir",
				ErrDirLocked, dir, strings.TrimSpace(string(data)))
		}
		return nil, fmt.Errorf("postgres: lock cluster directory: %w", err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &dirLock{f: f}, nil
}

// release drops the lock; it may be called more than once.
func (d *dirLock) release() {
	if d == nil || d.f == nil {
		return
	}
	d.f.Close()
	d.f = nil
}
