package router

import "github.com/shardline/shardline"

// Routing: which shard member serves a transaction, and binding the
// session's tenant and settings on the server connection it gets.

// route makes sure a server connection of the right shard is held for the
// statement q, binding the tenant and session settings on it. readOnly
// allows a replica within the session's staleness bound and token.
func (s *session) route(q []byte, readOnly bool) error {
	tenant, err := s.resolveTenant(q)
	if err != nil {
		return err
	}
	if s.be != nil {
		if s.pinned && s.beStatus == 'I' {
			s.sweepStmts()
			return s.rebindPinned(tenant)
		}
		return s.rebindInTransaction(tenant)
	}
	pl, err := s.r.placement()
	if err != nil {
		return err
	}
	var shard shardline.ShardID
	if tenant == "" {
		s.r.metrics.parses.Inc()
		v := s.r.tables.check(string(q))
		if !v.anyShard {
			return &Error{Code: codeNoTenant, Message: "no tenant is set for a statement that reads table " + v.table, Hint: tenantHint}
		}
		shard = anyShard(pl)
	} else {
		shard = pl.Locate(tenant).Shard
	}
	var pool *pool
	why := noFallback // why a replica-eligible read goes to the primary
	if readOnly && !s.avoidReplica {
		pool, why = s.replicaPool(pl, shard)
	}
	if pool == nil {
		if pool, err = s.r.poolFor(pl, shard, s.loop); err != nil {
			return err
		}
	}
	switch {
	case pool.replica:
		pool.metrics.readsReplica.Inc()
	case why != noFallback:
		pool.metrics.readsPrimary.Inc()
		pool.metrics.fallbacks[why].Inc()
	}
	be, err := s.acquire(pool, s.lastBe)
	if err != nil {
		return err
	}
	pool.metrics.transactions.Inc()
	s.be, s.beStatus, s.txTenant, s.txShard = be, 'I', tenant, shard
	s.beReplica, s.txWrote = pool.replica, false
	s.current.Store(be)
	s.sweepStmts()
	// In a transaction the client opened with BEGIN (deferred), the
	// binding call goes after the BEGIN, pipelined; else setup waits for
	// it (enter.go).
	bindLater, err := s.setup(be, tenant, s.deferred != nil && !isSetSnapshot(q))
	if err != nil {
		s.endTransaction(true) // be is broken
		return err
	}
	for _, m := range s.deferred {
		be.out.Write(m)
		s.push(pending{kind: 'Q', swallow: true})
	}
	s.deferred = nil
	if bindLater {
		s.pipelineEnter(be, tenant)
	}
	return nil
}

// replicaPool returns the pool of a replica of shard that may serve the
// session's read, or nil for the primary and the reason.
func (s *session) replicaPool(pl *shardline.Placement, shard shardline.ShardID) (*pool, fallback) {
	var pool *pool
	var reason fallback
	if s.maxWait > 0 { // may wait for a replica to catch up: off the event loop
		pool, reason = s.pickReplicaWaiting(pl, shard)
	} else {
		pool, reason = s.r.pickReplica(s.r.ctx, pl, shard, s.maxLag, s.token, 0, s.loop)
	}
	if pool == nil {
		return nil, reason
	}
	if s.deferred == nil { // autocommit: retryable elsewhere (see retry.go)
		s.startRecording(pool.member)
	}
	return pool, noFallback
}

// rebindPinned binds another tenant on a pinned session's connection
// between transactions; the tenant must live on the same shard.
func (s *session) rebindPinned(tenant shardline.TenantID) error {
	if tenant == s.be.tenant {
		s.txTenant = tenant
		return nil
	}
	pl, err := s.r.placement()
	if err != nil {
		return err
	}
	if tenant != "" && pl.Locate(tenant).Shard != s.txShard {
		return &Error{Code: codeFeatureNotSupported,
			Message: "session is pinned to shard " + string(s.txShard) + " and tenant \"" + string(tenant) + "\" lives on " + string(pl.Locate(tenant).Shard),
			Hint:    "LISTEN, temporary tables, session advisory locks, PREPARE and WITH HOLD cursors pin a session to its server connection; use a new session for the other tenant."}
	}
	s.txTenant = tenant
	if s.r.cfg.BindingToken != "" {
		if err := s.bindTenant(s.be, tenant, ""); err != nil {
			s.endTransaction(true) // the connection, and what pinned it, is gone
			return err
		}
		return nil
	}
	s.be.tenant = tenant
	s.be.out.Write(queryMsg(bindSQL(tenant)))
	s.push(pending{kind: 'Q', swallow: true, internal: true})
	return nil
}

// rebindInTransaction handles a statement inside a transaction: it must be
// for the transaction's tenant, or the transaction had none yet and the
// tenant lives on the transaction's shard.
func (s *session) rebindInTransaction(tenant shardline.TenantID) error {
	if tenant == "" || tenant == s.txTenant {
		return nil
	}
	if s.txTenant == "" {
		pl, err := s.r.placement()
		if err != nil {
			return err
		}
		if pl.Locate(tenant).Shard == s.txShard {
			s.txTenant = tenant
			s.boundInTx = true // a rollback undoes it: see onReady
			if s.r.cfg.BindingToken != "" {
				return s.bindTenant(s.be, tenant, "")
			}
			s.be.out.Write(queryMsg(bindSQL(tenant)))
			s.be.tenant = tenant
			s.push(pending{kind: 'Q', swallow: true, internal: true})
			return nil
		}
	}
	return &Error{Code: codeActiveTransaction,
		Message: "cannot switch to tenant \"" + string(tenant) + "\" inside a transaction of tenant \"" + string(s.txTenant) + "\"",
		Hint:    "A transaction belongs to one tenant: commit or roll back first, then set the other tenant."}
}

// setup makes be carry this session's settings and tenant. Settings (and
// a binding by SET, without a token) go in one query pipelined with the
// client's statement; a binding by shardline.enter() waits for the
// server's answer (enter.go).
//
// With inTx (the client opened a transaction, whose BEGIN is deferred), a
// binding by shardline.enter() is left to the caller, which pipelines it
// after the BEGIN: bindLater.
func (s *session) setup(be *backend, tenant shardline.TenantID, inTx bool) (bindLater bool, err error) {
	var sql string
	if be.applied != s.paramSQL {
		sql = "RESET ALL;" + s.paramSQL // RESET ALL unbinds the tenant too
		be.applied = s.paramSQL
		be.tenant = ""
	}
	if be.tenant != tenant {
		switch {
		case s.r.cfg.BindingToken == "":
			sql += bindSQL(tenant)
			be.tenant = tenant
		case inTx:
			bindLater = true
		default:
			return false, s.bindTenant(be, tenant, sql)
		}
	}
	if sql != "" {
		be.out.Write(queryMsg(sql))
		s.push(pending{kind: 'Q', swallow: true, internal: true})
	}
	return bindLater, nil
}

// isSetSnapshot reports whether q is SET TRANSACTION SNAPSHOT, which must
// come before any query of its transaction, so before a pipelined binding
// call.
func isSetSnapshot(q []byte) bool {
	w := words{q: q}
	return w.nextWord() == "set" && w.nextWord() == "transaction" && w.nextWord() == "snapshot"
}

func bindSQL(t shardline.TenantID) string {
	if t == "" {
		return "RESET shardline.tenant;"
	}
	return "SET shardline.tenant = " + quoteLiteral(string(t)) + ";"
}

// anyShard is where statements that read no tenant data go: the first shard.
func anyShard(p *shardline.Placement) shardline.ShardID {
	var first shardline.ShardID
	for id := range p.Shards {
		if first == "" || id < first {
			first = id
		}
	}
	return first
}

// readOnlyRoute reports whether the transaction that statement q starts may
// go to a replica: a deferred READ ONLY transaction, or an autocommit
// statement the session's target allows.
func (s *session) readOnlyRoute(q []byte) bool {
	if s.be != nil || s.target == targetPrimary {
		return false
	}
	if s.deferred != nil {
		return s.txReadOnly
	}
	return s.readIntent(q)
}

// readIntent reports whether an autocommit statement may go to a replica
// under the session's target.
func (s *session) readIntent(q []byte) bool {
	switch s.target {
	case targetReplica:
		return s.defaultReadOnly
	case targetAuto:
		return s.defaultReadOnly || isPlainSelect(q)
	}
	return false
}

// deferBegin keeps a BEGIN to send with the transaction's first statement.
func (s *session) deferBegin(q []byte) {
	ro, explicit := beginReadOnly(q)
	s.txReadOnly = ro || (!explicit && s.defaultReadOnly)
	s.deferred = [][]byte{queryMsg(string(q))}
}

// pickReplicaWaiting is pickReplica for a session that allows a wait for a
// replica to catch up (shardline.max_wait): it waits off the event loop.
func (s *session) pickReplicaWaiting(pl *shardline.Placement, shard shardline.ShardID) (p *pool, reason fallback) {
	s.task.Block(func() { p, reason = s.r.pickReplica(s.r.ctx, pl, shard, s.maxLag, s.token, s.maxWait, s.loop) })
	return p, reason
}
