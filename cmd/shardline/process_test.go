package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// mainChildEnv, set to 1, makes this test binary run main() with its
// arguments: the process tests start it as a real `shardline` process, to
// send it signals and read its exit status.
const mainChildEnv = "SHARDLINE_TEST_MAIN"

func init() {
	if os.Getenv(mainChildEnv) == "1" {
		main()
	}
}

// child is a `shardline` process started by a test.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed

	mu     sync.Mutex
	stderr strings.Builder
	lines  chan string // every stderr line, until stderr ends
}

// startChild runs `shardline args...` as a process. t.Cleanup kills it if
// it is still running.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{}), lines: make(chan string, 1000)}
	c.cmd.Env = append(os.Environ(), mainChildEnv+"=1")
	c.cmd.Stdout = io.Discard
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		close(c.lines)
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func (c *child) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// wait waits for the process to exit, at most within, and returns its exit
// code.
func (c *child) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(within): // a deadline, not a measurement
		c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("shardline %v still running after %v; killed. stderr:\n%s", c.cmd.Args[1:], within, c.Stderr())
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	if c.err != nil {
		t.Fatalf("wait: %v", c.err)
	}
	return 0
}

// awaitLine waits until the process writes a stderr line containing s.
func (c *child) awaitLine(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("shardline %v ended before writing %q; stderr:\n%s", c.cmd.Args[1:], s, c.Stderr())
			}
			if strings.Contains(line, s) {
				return
			}
		case <-deadline:
			t.Fatalf("shardline %v did not write %q within %v; stderr:\n%s", c.cmd.Args[1:], s, within, c.Stderr())
		}
	}
}

// upArgs are `shardline up` arguments for dir on free ports.
func upArgs(t *testing.T, dir string) []string {
	return []string{"up", "--dir", dir, "--shards", "1", "--replicas", "1",
		"--listen", freeAddr(t), "--admin", freeAddr(t), "--metrics", freeAddr(t),
		"--etcd", freeAddr(t), "--etcd-peer", freeAddr(t), "--pg-port", strconv.Itoa(freePGPort(t))}
}

// TestUpRefusesRunningClusterDir runs a second `shardline up` on the
// directory of a running cluster, with other ports: it must exit at once
// with one line naming the directory, the running process and its router.
func TestUpRefusesRunningClusterDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	var router string
	startUpWith(t, dir, 1, 0, func(c *upCommand) { router = c.Listen })

	second := startChild(t, upArgs(t, dir)...)
	code := second.wait(t, 30*time.Second)
	stderr := second.Stderr()
	if code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("second up: exit %d, stderr %q; want 1 and one line", code, stderr)
	}
	for _, want := range []string{"shardline up: ", dir, fmt.Sprintf("pid %d", os.Getpid()), "router " + router, "--dir"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("second up's error lacks %q: %s", want, stderr)
		}
	}
}

// TestUpStopsOnSIGTERMWhileStarting sends SIGTERM to `shardline up` while
// it starts PostgreSQL: it must exit within its stop bound, as a clean stop
// (status 0, no error), and leave no server running.
func TestUpStopsOnSIGTERMWhileStarting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	up := startChild(t, upArgs(t, dir)...)
	up.awaitLine(t, "starting PostgreSQL shards", time.Minute)
	if err := up.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := up.wait(t, stopTimeout+10*time.Second); code != 0 || strings.Contains(up.Stderr(), "shardline up: ") {
		t.Errorf("up stopped while starting: exit %d, want 0 and no error; stderr:\n%s", code, up.Stderr())
	}
	for _, pid := range postmasterPIDs(t, dir) {
		if running(pid) {
			t.Errorf("postmaster %d still running after up exited", pid)
		}
	}
}
