package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// lifecycle owns what a long-running command (up, router) starts: the
// stop functions of its components and its goroutines. stop runs the stop
// functions in reverse order of registration, even after a failed start.
// A lifecycle is driven by the one goroutine of the command's Run; only
// goRun's goroutines report to it concurrently.
type lifecycle struct {
	log   *slog.Logger
	stops []func(context.Context)

	// Set by runContext: the goroutines' context, and what ends it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// errc holds the first goroutine failure; the command stops on it, so
	// later ones are not kept.
	errc chan error
}

func newLifecycle(log *slog.Logger) *lifecycle {
	return &lifecycle{log: log, errc: make(chan error, 1)}
}

// onStop adds fn to what stop runs; fn gets a context bounded by
// stopTimeout.
func (l *lifecycle) onStop(fn func(context.Context)) {
	l.stops = append(l.stops, fn)
}

// runContext returns the context, derived from ctx, that goRun's
// goroutines run under. stop cancels it and waits for them where runContext
// was called in the stop order: after the components registered later and
// before those registered earlier. Call it once, before goRun.
func (l *lifecycle) runContext(ctx context.Context) context.Context {
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.onStop(func(context.Context) { l.cancel(); l.wg.Wait() })
	return l.ctx
}

// goRun runs fn in a goroutine owned by l. An error fn returns while the
// run context is live is reported on failed, prefixed with name.
func (l *lifecycle) goRun(name string, fn func() error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := fn(); err != nil && l.ctx.Err() == nil {
			select {
			case l.errc <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// failed delivers the first failure of a goroutine started by goRun.
func (l *lifecycle) failed() <-chan error { return l.errc }

// serveHTTP serves srv on ln as a goroutine named name; stop shuts srv
// down.
func (l *lifecycle) serveHTTP(name string, srv *http.Server, ln net.Listener) {
	l.goRun(name, func() error { return serveHTTP(srv, ln) })
	l.onStop(func(ctx context.Context) { _ = srv.Shutdown(ctx) })
}

// stop cancels the run context, runs the stop functions in reverse order
// within stopTimeout, and logs "stopped".
func (l *lifecycle) stop() {
	if l.cancel != nil {
		l.cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	for i := len(l.stops) - 1; i >= 0; i-- {
		l.stops[i](sctx)
	}
	l.log.Info("stopped")
}

// serveHTTP serves srv on ln until srv is shut down, which is no error.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
