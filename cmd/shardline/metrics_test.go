package main

import (
	"context"
	"net"
	"net/http"
	"testing"
)

// serveMetrics serves newMetricsServer on a loopback port and returns its
// base URL.
func serveMetrics(t *testing.T, withPprof bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newMetricsServer(newRegistry(), withPprof)
	done := make(chan error, 1)
	go func() { done <- serveHTTP(srv, ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// statusOfGet returns the status of GET url.
func statusOfGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsPprof: /debug/pprof is served only when asked for; /metrics
// always.
func TestMetricsPprof(t *testing.T) {
	paths := []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap", "/debug/pprof/symbol"}
	off := serveMetrics(t, false)
	if got := statusOfGet(t, off+"/metrics"); got != http.StatusOK {
		t.Errorf("without --pprof: GET /metrics = %d", got)
	}
	for _, p := range paths {
		if got := statusOfGet(t, off+p); got != http.StatusNotFound {
			t.Errorf("without --pprof: GET %s = %d, want 404", p, got)
		}
	}
	on := serveMetrics(t, true)
	for _, p := range append(paths, "/metrics") {
		if got := statusOfGet(t, on+p); got != http.StatusOK {
			t.Errorf("with --pprof: GET %s = %d, want 200", p, got)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.3.4.5:1": true, "[::1]:1": true,
		"0.0.0.0:1": false, "[::]:1": false, "10.0.0.1:1": false, "192.168.1.2:1": false,
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(tcp); got != want {
			t.Errorf("isLoopback(%s) = %v, want %v", addr, got, want)
		}
	}
}
