package router

import "github.com/shardline/shardline"

// txBinding is a session's transaction as the router sees it: the server
// connection it holds, the tenant and shard the transaction belongs to,
// and what the router must remember until it ends. A pinned session keeps
// its binding's connection between transactions.
type txBinding struct {
	be           *backend
	beStatus     byte     // the server's last ReadyForQuery status
	unnamedOn    *backend // be, once the unnamed statement was parsed on it since the session took it
	txTenant     shardline.TenantID
	txShard      shardline.ShardID
	lastBe       *backend // affinity: the connection used last
	deferred     [][]byte // BEGIN (and SET TRANSACTION) answered before the target was known
	pendingSets  []settingOp
	txReadOnly   bool // the deferred transaction is READ ONLY
	txWrote      bool // the transaction may have written (for the write token)
	beReplica    bool // the held connection is a replica's
	txFailed     bool // a router error aborted the transaction
	pinned       bool // the session keeps its server connection (see stmtInfo.pins)
	errSeen      bool
	lastRollback bool // the last command of the transaction was ROLLBACK
	// boundInTx: the tenant was bound inside the transaction (see
	// rebindInTransaction), where a rollback undoes the SET.
	boundInTx bool
}

// unknownTenant marks a server connection whose binding the router does
// not know: it matches no tenant, so the next transaction binds afresh.
const unknownTenant shardline.TenantID = "\x00unknown"

// status is the transaction status the client should see.
func (s *session) status() byte {
	switch {
	case s.txFailed:
		return 'E'
	case s.be != nil:
		return s.beStatus
	case s.deferred != nil:
		return 'T'
	}
	return 'I'
}

// abortTransaction drops the held server connection and marks the client's
// transaction failed until it sends ROLLBACK.
func (s *session) abortTransaction() {
	if s.be != nil {
		s.be.broken = true
		s.endTransaction(true)
	}
	s.deferred = nil
	s.txFailed = true
	s.pendingSets = nil
}

// endTransaction returns (or, when broken or aborting, closes) the held
// server connection.
func (s *session) endTransaction(abort bool) {
	be := s.be
	if be == nil || (s.pinned && !abort) {
		return
	}
	if s.pinned {
		be.broken = true // it carries session state no other session may see
	}
	s.be, s.unnamedOn = nil, nil
	s.current.Store(nil)
	s.txTenant, s.txShard = "", ""
	if abort && s.beStatus != 'I' {
		be.broken = true
	}
	if abort && len(s.queue) > 0 {
		be.broken = true // responses still in flight
	}
	if be.broken {
		be.pool.discard(be)
		if s.lastBe == be {
			s.lastBe = nil
		}
		return
	}
	s.lastBe = be
	be.pool.release(be)
}
