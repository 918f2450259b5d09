package router

import (
	"context"
	"time"

	"github.com/shardline/shardline"
)

// fallback is why a replica-eligible read went to the primary, or
// noFallback when a replica serves it.
type fallback uint8

const (
	noFallback fallback = iota
	fallbackNone
	fallbackUnhealthy
	fallbackLag
	fallbackToken
	fallbackOtherTok
	numFallbacks
)

// label is f's reason label on shardline_router_replica_fallbacks_total.
func (f fallback) label() string {
	switch f {
	case fallbackNone:
		return "no_replicas"
	case fallbackUnhealthy:
		return "unhealthy"
	case fallbackLag:
		return "lag"
	case fallbackToken:
		return "token"
	case fallbackOtherTok:
		return "token_other_shard"
	}
	return ""
}

// pickReplica returns the least loaded replica of shard that is healthy,
// within bound, and has replayed tok (a token of another shard rules out
// every replica). With no such replica it waits up to wait for the next
// samples, then returns nil and the reason. The pool is loop's.
func (r *Router) pickReplica(ctx context.Context, pl *shardline.Placement, shard shardline.ShardID, bound lagBound, tok shardline.Token, wait time.Duration, loop int) (*pool, fallback) {
	sh := pl.Shards[shard]
	if len(sh.Replicas) == 0 {
		return nil, fallbackNone
	}
	if tok.Shard != "" && tok.Shard != shard {
		return nil, fallbackOtherTok
	}
	var deadline time.Time
	for {
		changed := r.mon.changed.Load()
		p, reason := r.eligibleReplica(sh, bound, tok, time.Now(), loop)
		if p != nil || wait <= 0 || reason == fallbackNone {
			return p, reason
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(wait)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, reason
		}
		t := time.NewTimer(left)
		select {
		case <-*changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return nil, reason
		}
	}
}

func (r *Router) eligibleReplica(sh shardline.Shard, bound lagBound, tok shardline.Token, now time.Time, loop int) (*pool, fallback) {
	health := r.mon.state.Load()
	reason := fallbackUnhealthy
	var best *pool
	bestLoad := 0
	for _, m := range sh.Replicas {
		st := health.replicas[m.Name]
		if st == nil || !st.healthy || st.caughtUp.IsZero() {
			continue
		}
		if bound.bytes > 0 {
			if st.lagBytes > bound.bytes {
				reason = fallbackLag
				continue
			}
		} else if st.staleness(now) > bound.dur {
			reason = fallbackLag
			continue
		}
		if tok.Shard != "" && !st.replayed(tok.LSN) {
			reason = fallbackToken
			continue
		}
		p, err := r.memberPool(sh.ID, m, sh.ServerUser, true, loop)
		if err != nil {
			continue
		}
		if load := p.inUse(); best == nil || load < bestLoad {
			best, bestLoad = p, load
		}
	}
	if best != nil {
		return best, noFallback
	}
	return nil, reason
}
