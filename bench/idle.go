package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// idleOpeners is how many connections the idle workload opens at once.
	idleOpeners = 16
	// idleSettle is how long the idle workload waits before each RSS
	// reading, so the proxy finishes its work on the last connection.
	idleSettle = time.Second
	// idleConnectTimeout bounds each connection attempt.
	idleConnectTimeout = 15 * time.Second
)

// IdleResult is one run of the idle workload.
type IdleResult struct {
	// Conns is how many connections were held open at once.
	Conns int `json:"conns"`
	// RSSBeforeKiB and RSSAfterKiB are the proxy's resident set size
	// before the first connection and with all of them open.
	RSSBeforeKiB int64 `json:"rss_before_kib"`
	RSSAfterKiB  int64 `json:"rss_after_kib"`
	// OpenSeconds is how long opening all connections (and one SELECT 1
	// on each) took.
	OpenSeconds float64 `json:"open_seconds"`
}

// KiBPerConn is (RSSAfter - RSSBefore) / Conns; it may be negative when the
// proxy returned memory to the system in between.
func (r IdleResult) KiBPerConn() float64 {
	if r.Conns == 0 {
		return 0
	}
	return float64(r.RSSAfterKiB-r.RSSBeforeKiB) / float64(r.Conns)
}

// holdIdle opens n connections spread over endpoints (round robin), runs
// SELECT 1 once on each, and reads pid's RSS before opening the first and
// while all are open and idle; then it closes them.
func holdIdle(ctx context.Context, endpoints []Endpoint, n, pid int) (IdleResult, error) {
	cfgs := make([]*pgconn.Config, len(endpoints))
	for i, e := range endpoints {
		c, err := pgconn.ParseConfig(e.DSN)
		if err != nil {
			return IdleResult{}, fmt.Errorf("idle: endpoint %d: %w", i, err)
		}
		// ParseConfig reads PGOPTIONS too: the endpoint alone decides.
		delete(c.RuntimeParams, "options")
		if e.Options != "" {
			c.RuntimeParams["options"] = e.Options
		}
		c.ConnectTimeout = idleConnectTimeout
		cfgs[i] = c
	}
	if err := sleepCtx(ctx, idleSettle); err != nil {
		return IdleResult{}, err
	}
	before, err := ReadRSS(pid)
	if err != nil {
		return IdleResult{}, err
	}

	conns := make([]*pgconn.PgConn, n)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for i := 0; i < len(conns); i += len(conns)/idleOpeners + 1 {
			wg.Add(1)
			go func(part []*pgconn.PgConn) {
				defer wg.Done()
				for _, c := range part {
					if c != nil {
						_ = c.Close(cctx)
					}
				}
			}(conns[i:min(len(conns), i+len(conns)/idleOpeners+1)])
		}
		wg.Wait()
	}()

	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range idleOpeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := pgconn.ConnectConfig(ctx, cfgs[i%len(cfgs)])
				if err == nil {
					conns[i] = c
					err = c.Exec(ctx, "SELECT 1").Close()
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("connection %d: %w", i+1, err))
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range n {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return IdleResult{}, context.Cause(ctx)
	}
	if len(errs) > 0 {
		return IdleResult{}, fmt.Errorf("idle: %d of %d connections failed: %w", len(errs), n, errors.Join(errs[:min(len(errs), 3)]...))
	}
	opened := time.Since(start)
	if err := sleepCtx(ctx, idleSettle); err != nil {
		return IdleResult{}, err
	}
	after, err := ReadRSS(pid)
	if err != nil {
		return IdleResult{}, err
	}
	return IdleResult{Conns: n, RSSBeforeKiB: before, RSSAfterKiB: after, OpenSeconds: opened.Seconds()}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
