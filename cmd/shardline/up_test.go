package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freePGPort finds three consecutive free ports for a 1-shard, 1-replica
// cluster plus slack.
func freePGPort(t *testing.T) int {
	t.Helper()
	for base := 20000 + os.Getpid()%5000; base < 31000; base += 7 {
		ok := true
		for p := base; p < base+4; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// startUp runs `shardline up` in process on free ports and waits until it
// is ready. The returned stop cancels it and waits for Run to return.
func startUp(t *testing.T, dir string, shards, replicas int) (upInfo, func() error) {
	t.Helper()
	return startUpWith(t, dir, shards, replicas, nil)
}

// startUpWith is startUp with a hook to change the command's settings.
func startUpWith(t *testing.T, dir string, shards, replicas int, change func(*upCommand)) (upInfo, func() error) {
	t.Helper()
	c := &upCommand{
		Dir: dir, Shards: shards, Replicas: replicas,
		Listen: freeAddr(t), Admin: freeAddr(t), Metrics: freeAddr(t), Etcd: freeAddr(t), EtcdPeer: freeAddr(t),
		BasePort: freePGPort(t), routerFlags: routerFlags{Database: "app", PoolSize: 8},
		Stdout: &bytes.Buffer{}, Logger: pgtest.Logger(t),
	}
	if change != nil {
		change(c)
	}
	return runUntilReady(t, "up", 2*time.Minute, &c.OnReady, c.Run)
}

// postmasterPIDs reads the postmaster.pid files under dir.
func postmasterPIDs(t *testing.T, dir string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "pg", "*", "postmaster.pid"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// running reports whether pid is a live (not zombie) process.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestUpServesAndStops is the quick start as a test: up, healthz, a tenant
// through the router, pgbench through the router, stop with nothing left,
// and a restart that keeps the data.
func TestUpServesAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	info, stop := startUp(t, dir, 2, 1)

	resp, err := http.Get(info.AdminURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, info.RouterDSN+"&options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatal(err)
	}
	var bound string
	if err := conn.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&bound); err != nil || bound != "acme" {
		t.Fatalf("tenant through the router: %q %v", bound, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (tenant_id text, v int); INSERT INTO kept VALUES ('acme', 42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	if pgbench, err := exec.LookPath("pgbench"); err == nil {
		for _, args := range [][]string{{"-i", "-s", "1", "-q"}, {"-S", "-M", "prepared", "-c", "4", "-j", "2", "-t", "200", "-n"}} {
			cmd := exec.CommandContext(ctx, pgbench, append(args, info.RouterDSN)...)
			cmd.Env = append(os.Environ(), "PGOPTIONS=-c shardline.tenant=t1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pgbench %v through the router: %v\n%s", args, err, out)
			}
		}
	} else {
		t.Log("pgbench not on PATH; skipping the pgbench part")
	}

	pids := postmasterPIDs(t, dir)
	if len(pids) != 4 {
		t.Fatalf("%d postmasters running, want 4", len(pids))
	}
	if err := stop(); err != nil {
		t.Fatalf("up after stop: %v", err)
	}
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("postmaster %d still running after stop", pid)
		}
	}

	info, _ = startUp(t, dir, 2, 1)
	conn, err = pgx.Connect(ctx, info.RouterDSN+"&options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("data after restart: %d %v", v, err)
	}
}

func TestUpRefusesBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := &upCommand{Dir: t.TempDir(), Shards: 1, Listen: ln.Addr().String(), Admin: freeAddr(t), Metrics: freeAddr(t), Stdout: &bytes.Buffer{}}
	err = c.Run(context.Background())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, ln.Addr().String()) {
		t.Fatalf("busy router port: %v", err)
	}
}

func TestUpFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--max-connections", "5"},
		{"--max-connections", "20000"},
		{"--shards", "0"},
		{"--replicas", "-1"},
		{"extra"},
		{"--pool-size", "0"},
		{"--target", "bogus"},
		{"--max-lag", "soon"},
	} {
		dir := filepath.Join(t.TempDir(), "cluster")
		r := runCLI(t, "", append([]string{"up", "--dir", dir}, args...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "shardline up: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("up %q: exit %d, stderr %q; want 2 and one line", args, r.code, r.stderr)
		}
		// Refused before anything was started for it.
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("up %q: cluster directory created (%v)", args, err)
		}
	}
}
