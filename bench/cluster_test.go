package bench

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseReadyLine(t *testing.T) {
	line := "shardline ready: router postgres://postgres@127.0.0.1:6432/app?sslmode=disable  admin http://127.0.0.1:6480  metrics http://127.0.0.1:6490/metrics\n"
	r, a, err := ParseReadyLine(line)
	if err != nil || r != "postgres://postgres@127.0.0.1:6432/app?sslmode=disable" || a != "http://127.0.0.1:6480" {
		t.Errorf("ParseReadyLine = %q, %q, %v", r, a, err)
	}
	for _, bad := range []string{
		"",
		"ready: router postgres://x admin http://y",
		"shardline ready: admin http://127.0.0.1:6480",
		"shardline ready: router postgres://x",
		"shardline ready: router mysql://x admin http://y",
		"shardline ready: router",
	} {
		if _, _, err := ParseReadyLine(bad); err == nil {
			t.Errorf("ParseReadyLine(%q): want an error", bad)
		}
	}
}

func TestParseRouterReadyLine(t *testing.T) {
	line := "shardline router ready: router postgres://postgres@127.0.0.1:6433/app?sslmode=disable  metrics http://127.0.0.1:6491/metrics\n"
	r, m, err := ParseRouterReadyLine(line)
	if err != nil || r != "postgres://postgres@127.0.0.1:6433/app?sslmode=disable" || m != "http://127.0.0.1:6491/metrics" {
		t.Errorf("ParseRouterReadyLine = %q, %q, %v", r, m, err)
	}
	for _, bad := range []string{
		"",
		"shardline ready: router postgres://x  admin http://y  metrics http://z", // up's line
		"shardline router ready: metrics http://127.0.0.1:6491/metrics",
		"shardline router ready: router postgres://x",
		"shardline router ready: router postgres://x metrics ftp://y",
	} {
		if _, _, err := ParseRouterReadyLine(bad); err == nil {
			t.Errorf("ParseRouterReadyLine(%q): want an error", bad)
		}
	}
}

// readyLine returns the line w passed on, failing t when there is none.
func readyLine(t *testing.T, w *readyWatcher) string {
	t.Helper()
	select {
	case line := <-w.c:
		return line
	default:
		t.Fatal("no ready line")
		return ""
	}
}

func TestReadyWatcher(t *testing.T) {
	w := newReadyWatcher(readyMarker)
	for _, chunk := range []string{"try: psql ...\nshardline rea", "dy: router postgres://x admin http://y\ntry: ", "more\n"} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if line := readyLine(t, w); line != "shardline ready: router postgres://x admin http://y" {
		t.Errorf("line = %q", line)
	}
	// The router's watcher passes on the router's line, not up's.
	w = newReadyWatcher(routerReadyMarker)
	w.Write([]byte("shardline ready: router postgres://x admin http://y\nshardline router ready: router postgres://r metrics http://m\n"))
	if line := readyLine(t, w); line != "shardline router ready: router postgres://r metrics http://m" {
		t.Errorf("router line = %q", line)
	}
	// A long stream without newlines does not grow without bound.
	w = newReadyWatcher(readyMarker)
	w.Write([]byte(strings.Repeat("x", 200*1024)))
	if len(w.buf) > 64*1024 {
		t.Errorf("buffer holds %d bytes", len(w.buf))
	}
}

func TestAdmin(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"cluster":"default","shards":[
			{"id":"s1","primary":{"name":"s1-primary","dsn":"postgres://postgres@127.0.0.1:26000/app"},"replicas":[]},
			{"id":"s2","primary":{"name":"s2-primary","dsn":"postgres://postgres@127.0.0.1:26001/app"},"replicas":[]}]}`))
	})
	mux.HandleFunc("GET /v1/tenants/{t}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.PathValue("t"), "bench"))
		shard := "s1"
		if n >= 4 {
			shard = "s2"
		}
		if r.PathValue("t") == "broken" {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":"etcd unavailable"}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"tenant": r.PathValue("t"), "shard": shard})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	a := Admin{URL: srv.URL + "/"}
	ctx := t.Context()

	shards, err := a.Shards(ctx)
	if err != nil || len(shards) != 2 || shards[1].ID != "s2" || shards[1].PrimaryDSN != "postgres://postgres@127.0.0.1:26001/app" {
		t.Errorf("Shards = %+v, %v", shards, err)
	}
	got, err := a.FindTenants(ctx, "bench", []string{"s1", "s2"})
	if err != nil || got["s1"] != "bench1" || got["s2"] != "bench4" {
		t.Errorf("FindTenants = %v, %v", got, err)
	}
	if _, err := a.FindTenants(ctx, "bench", []string{"s3"}); err == nil || !strings.Contains(err.Error(), "s3") {
		t.Errorf("FindTenants of a shard without tenants = %v", err)
	}
	if _, err := a.TenantShard(ctx, "broken"); err == nil || !strings.Contains(err.Error(), "etcd unavailable") {
		t.Errorf("TenantShard of a failing API = %v, want the API's message", err)
	}
	if _, err := (Admin{URL: srv.URL + "/nothing"}).Shards(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Shards of a wrong URL = %v", err)
	}
}

func TestWaitReplicas(t *testing.T) {
	// s1's replica is unsampled, then behind, then caught up; s2 has none.
	states := []string{
		`{"name":"s1-replica1","healthy":false,"lag_bytes":0,"lag_ms":-1}`,
		`{"name":"s1-replica1","healthy":true,"lag_bytes":900000,"lag_ms":4000}`,
		`{"name":"s1-replica1","healthy":true,"lag_bytes":0,"lag_ms":0}`,
	}
	var calls atomic.Int32
	var stuck atomic.Bool // from then on: behind
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := states[min(int(calls.Add(1))-1, len(states)-1)]
		if stuck.Load() {
			st = states[1]
		}
		w.Write([]byte(`{"shards":[{"id":"s1","primary":{"dsn":"postgres://a"},"replicas":[` + st + `]},
			{"id":"s2","primary":{"dsn":"postgres://b"},"replicas":[]}]}`))
	}))
	defer srv.Close()
	a := Admin{URL: srv.URL}
	ctx := t.Context()
	if err := a.WaitReplicas(ctx, "s1", time.Second, 10*time.Second); err != nil || calls.Load() != 3 {
		t.Errorf("WaitReplicas = %v after %d status reads, want nil after 3", err, calls.Load())
	}
	shards, err := a.Shards(ctx)
	if err != nil || len(shards[0].Replicas) != 1 || shards[0].Replicas[0] != (ReplicaInfo{Name: "s1-replica1", Healthy: true}) || shards[1].Replicas != nil {
		t.Errorf("Shards = %+v, %v", shards, err)
	}
	if err := a.WaitReplicas(ctx, "s2", time.Second, time.Second); err == nil || !strings.Contains(err.Error(), "no replicas") {
		t.Errorf("WaitReplicas(no replicas) = %v", err)
	}
	if err := a.WaitReplicas(ctx, "s3", time.Second, time.Second); err == nil || !strings.Contains(err.Error(), "no shard s3") {
		t.Errorf("WaitReplicas(unknown shard) = %v", err)
	}
	stuck.Store(true)
	start := time.Now()
	err = a.WaitReplicas(ctx, "s1", time.Second, 600*time.Millisecond)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "LagMS:4000") || time.Since(start) > 5*time.Second {
		t.Errorf("WaitReplicas(lagging) = %v", err)
	}
}

func TestFreePortRange(t *testing.T) {
	base, err := freePortRange(3)
	if err != nil {
		t.Fatal(err)
	}
	if base < pgPortLow || base+3 > pgPortHigh {
		t.Errorf("base %d out of range", base)
	}
	for p := base; p < base+3; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d: %v", p, err)
			continue
		}
		l.Close()
	}
}

// TestChildStop checks the child process lifecycle: a child that ignores
// SIGTERM is killed after the grace period, and its log tail is kept.
func TestChildStop(t *testing.T) {
	dir := t.TempDir()
	c, err := startChild(childConfig{name: "sh", path: "/bin/sh", args: []string{"-c", "trap '' TERM; echo started; exec sleep 60"}, logPath: dir + "/sh.log"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if c.exited() != nil {
		t.Fatalf("exited early: %v", c.exited())
	}
	err = c.stop(15, 300*time.Millisecond) // SIGTERM, ignored by sh then by sleep
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stop = %v, want a killed error", err)
	}
	if gone := c.exited(); gone == nil || !strings.Contains(gone.Error(), "started") {
		t.Errorf("exited = %v, want the log tail", gone)
	}
	if err := c.stop(15, time.Second); err != nil {
		t.Errorf("second stop = %v", err)
	}
}
