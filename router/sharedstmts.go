package router

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// sharedStmts tracks the named statements that sessions share on the
// servers (see prepared). Three things follow from sharing, and it handles
// each:
//
//   - A statement no session holds any more is closed on every server
//     connection that has it, before that connection serves its next
//     transaction (sweep), as PostgreSQL forgets a closed statement.
//   - A plan that a schema change broke ("cached plan must not change
//     result type", "cache lookup failed for type") must not be handed to
//     the client's next Parse of the same text, as it would be under a name
//     derived from the text alone. The name carries an epoch that rises on
//     such an error and on DDL the router relays (invalidate), so a Parse
//     after either gets a fresh server statement.
//   - Statements of old epochs die as their sessions close them (drivers
//     close and re-prepare a statement that failed), and are swept.
//
// Sessions of every loop share one registry; it is touched on named Parse,
// Close and session end, never per Bind or Execute.
type sharedStmts struct {
	epoch atomic.Uint64 // rises at each invalidation; part of every server name
	gen   atomic.Uint64 // rises when a statement dies: connections sweep when theirs differs

	mu   sync.Mutex
	refs map[string]int // server name -> sessions' statements naming it
}

func newSharedStmts() *sharedStmts { return &sharedStmts{refs: make(map[string]int)} }

// name returns the server name for a statement of this text and parameter
// types in the current epoch.
func (r *sharedStmts) name(query, types []byte) string {
	d := xxhash.New()
	_, _ = d.Write(query)
	_, _ = d.Write([]byte{0})
	_, _ = d.Write(types)
	var ep [8]byte
	binary.BigEndian.PutUint64(ep[:], r.epoch.Load())
	_, _ = d.Write(ep[:])
	var sum [8]byte
	return "sl_" + hex.EncodeToString(d.Sum(sum[:0]))
}

// hold records one more session statement naming server.
func (r *sharedStmts) hold(server string) {
	r.mu.Lock()
	r.refs[server]++
	r.mu.Unlock()
}

// drop records that a session statement naming server is gone; the last
// one makes it dead, to be swept from the server connections.
func (r *sharedStmts) drop(server string) {
	r.mu.Lock()
	if n := r.refs[server]; n > 1 {
		r.refs[server] = n - 1
	} else {
		delete(r.refs, server)
		r.gen.Add(1)
	}
	r.mu.Unlock()
}

// invalidate starts a new epoch: statements the clients prepare from now
// on get new server names, and so fresh plans.
func (r *sharedStmts) invalidate() { r.epoch.Add(1) }

// sweep returns the statements of be that no session holds, removing them
// from be.prepared; the caller closes them on the server. It costs one
// atomic load when no statement died since be's last sweep.
func (r *sharedStmts) sweep(be *backend, dead []string) []string {
	g := r.gen.Load()
	if be.swept == g {
		return dead
	}
	r.mu.Lock()
	for name := range be.prepared {
		if _, held := r.refs[name]; !held {
			dead = append(dead, name)
			delete(be.prepared, name)
		}
	}
	r.mu.Unlock()
	be.swept = g
	return dead
}

// invalidatesPlans reports whether a server error means that a schema
// change broke plans the servers cached for shared statements.
func invalidatesPlans(body []byte) bool {
	code, msg := errorField(body, 'C'), errorField(body, 'M')
	switch string(code) {
	case "0A000":
		return bytes.HasPrefix(msg, []byte("cached plan must not change result type"))
	case "XX000":
		return bytes.HasPrefix(msg, []byte("cache lookup failed for type"))
	}
	return false
}

// isDDLTag reports whether a CommandComplete tag is of a schema change that
// can break cached plans (ALTER, DROP), after which shared statements are
// prepared afresh. Other changes that can (CREATE OR REPLACE VIEW, say) and
// DDL run on a shard directly are caught by the error they cause
// (invalidatesPlans).
func isDDLTag(tag []byte) bool {
	switch {
	case len(tag) < 5:
		return false
	case tag[0] == 'A':
		return bytes.HasPrefix(tag, []byte("ALTER "))
	case tag[0] == 'D':
		return bytes.HasPrefix(tag, []byte("DROP "))
	}
	return false
}
