package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// pprofHelp is the help text of --pprof, which every command that serves
// metrics takes.
const pprofHelp = "also serve the runtime profiles (/debug/pprof/) on the metrics address, for performance work; off by default"

// newRegistry returns a Prometheus registry with the Go runtime and process
// collectors; the process's components register their metrics on it.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newMetricsServer serves reg on GET /metrics and, with withPprof, the
// runtime profiles on /debug/pprof/; without it those paths are 404.
func newMetricsServer(reg *prometheus.Registry, withPprof bool) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// warnPprofExposed logs a warning when the profiles are served on an
// address other hosts can reach: they have no authentication.
func warnPprofExposed(log *slog.Logger, withPprof bool, ln net.Listener) {
	if withPprof && !isLoopback(ln.Addr()) {
		log.Warn("--pprof on a metrics address that is not loopback: anyone who reaches it can read the profiles", "addr", ln.Addr().String())
	}
}

// isLoopback reports whether a bound address accepts only local
// connections (127.0.0.0/8 or ::1); a wildcard address (0.0.0.0, ::) is
// not loopback.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
