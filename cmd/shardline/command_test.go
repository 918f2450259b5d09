package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// runUntilReady runs a command in process: it sets *onReady, starts run
// and waits up to within for the command to call onReady. The returned
// stop cancels run's context and waits for it to return; a second call
// returns nil. t.Cleanup calls stop too.
func runUntilReady[I any](t *testing.T, name string, within time.Duration, onReady *func(I), run func(context.Context) error) (I, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan I, 1)
	*onReady = func(i I) { readyc <- i }
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var info I
	select {
	case info = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("%s ended before ready: %v", name, err)
	case <-time.After(within):
		cancel()
		t.Fatalf("%s not ready within %v", name, within)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(stopTimeout + 5*time.Second):
			return fmt.Errorf("%s did not stop within the stop timeout", name)
		}
	}
	t.Cleanup(func() { _ = stop() })
	return info, stop
}
