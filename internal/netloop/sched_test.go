package netloop

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The loop's thread, and only it, runs in SCHED_BATCH while the loop runs,
// unless the config says not to; when Run returns the thread is back in the
// default policy, so that Go's other goroutines never run batched.
func TestLoopThreadRunsBatch(t *testing.T) {
	if !canBatch() {
		t.Skip("this process may not put a thread in SCHED_BATCH (seccomp?)")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want int // threads in SCHED_BATCH while the loop runs
	}{
		{"default", Config{}, 1},
		{"NoSchedBatch", Config{NoSchedBatch: true}, 0},
		{"epoll", Config{NoIOUring: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := batchThreads(t)
			l, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			done := run(l)
			<-l.Started()
			if got := batchThreads(t) - before; got != tc.want {
				t.Errorf("%d more threads in SCHED_BATCH while the loop runs, want %d", got, tc.want)
			}
			if got := l.SchedBatch(); got != (tc.want == 1) {
				t.Errorf("SchedBatch() = %v, want %v", got, tc.want == 1)
			}
			l.Close()
			<-done
			if got := batchThreads(t); got != before {
				t.Errorf("%d threads in SCHED_BATCH after Run returned, want %d as before", got, before)
			}
		})
	}
}

// canBatch reports whether a thread of this process may enter SCHED_BATCH
// (a sandbox can forbid sched_setattr), trying it on a throwaway locked
// thread.
func canBatch() bool {
	ok := make(chan bool)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		restore, batched, err := batchThread()
		restore() // before the count of the test's threads, which may still see this one
		ok <- batched && err == nil
	}()
	return <-ok
}

// batchThreads counts this process's threads in SCHED_BATCH, from the
// policy field of /proc/self/task/*/stat (the 41st; the 2nd, the command,
// is in parentheses and may hold spaces).
func batchThreads(t *testing.T) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue // the thread exited
		}
		if err != nil {
			t.Fatal(err)
		}
		fields := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
		const policyField = 41 - 3 // fields after the command start at the 3rd
		if len(fields) <= policyField {
			t.Fatalf("%s: %d fields after the command, want more than %d", path, len(fields), policyField)
		}
		policy, err := strconv.Atoi(string(fields[policyField]))
		if err != nil {
			t.Fatalf("%s: policy %q: %v", path, fields[policyField], err)
		}
		if policy == unix.SCHED_BATCH {
			n++
		}
	}
	return n
}
