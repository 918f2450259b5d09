// Package clusterdir guards the cluster directory of `shardline up`: the
// process that runs a cluster holds an exclusive lock on DIR/up.lock for as
// long as it runs, with a record of its pid and addresses in the file, so
// that a second process on the same directory fails at once and can say who
// runs it. The kernel drops the lock when the holder dies, so a crash leaves
// nothing to clean up.
package clusterdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// FileName is the lock file inside the cluster directory.
const FileName = "up.lock"

// ErrInUse is wrapped by the *InUseError Lock returns when another live
// process holds the directory.
var ErrInUse = errors.New("clusterdir: cluster directory in use")

// Holder is what the lock file records of the process that holds it.
type Holder struct {
	PID int `json:"pid"`
	// Router and Admin are the addresses the holder serves; "" until it
	// has bound them.
	Router string `json:"router,omitempty"`
	Admin  string `json:"admin,omitempty"`
}

// InUseError says which process holds a cluster directory. Holder is zero
// when its record could not be read (the holder is writing it, or it is not
// a shardline process).
type InUseError struct {
	Dir    string
	Holder Holder
}

func (e *InUseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster directory %s is in use by a running 'shardline up'", e.Dir)
	var about []string
	if e.Holder.PID > 0 {
		about = append(about, fmt.Sprintf("pid %d", e.Holder.PID))
	}
	if e.Holder.Router != "" {
		about = append(about, "router "+e.Holder.Router)
	}
	if e.Holder.Admin != "" {
		about = append(about, "admin "+e.Holder.Admin)
	}
	if len(about) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(about, ", "))
	}
	b.WriteString("; use that cluster, stop it first, or pass another --dir to run a second one")
	return b.String()
}

func (e *InUseError) Unwrap() error { return ErrInUse }

// Lock is a held cluster directory. Its methods are not safe for
// concurrent use; the command that runs the cluster owns it.
type Lock struct {
	f      *os.File
	holder Holder
}

// Acquire takes the lock of dir, which must exist, without waiting, and
// records this process's pid. A directory another live process holds is an
// *InUseError wrapping ErrInUse; any other error is the file system's.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock cluster directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, Holder: readHolder(path)}
		}
		return nil, fmt.Errorf("lock cluster directory %s: %w", dir, err)
	}
	l := &Lock{f: f, holder: Holder{PID: os.Getpid()}}
	if err := l.write(); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// SetAddrs records the addresses the holder serves, for the message a
// second process gets.
func (l *Lock) SetAddrs(router, admin string) error {
	l.holder.Router, l.holder.Admin = router, admin
	return l.write()
}

func (l *Lock) write() error {
	b, err := json.Marshal(l.holder)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("write %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write %s: %w", l.f.Name(), err)
	}
	return nil
}

// Release drops the lock; later calls do nothing. The file stays: its
// record is only read while someone holds the lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
}

// readHolder reads the record of a held lock file; a record being written
// or not ours reads as a zero Holder.
func readHolder(path string) Holder {
	var h Holder
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &h) != nil {
		return Holder{}
	}
	return h
}
