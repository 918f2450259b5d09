package router

import (
	"github.com/shardline/shardline"
)

// Binding a tenant on a server connection with shardline.enter().
//
// On shards that load the shardline_guard library (storage/postgres/guard.go),
// shardline.tenant is a setting only a superuser may write, so the router's
// role binds a tenant with shardline.enter(tenant, token). The token is a
// bind parameter: pg_stat_activity shows "$2", not its value. The call is
// a transaction of its own (Parse once per connection, then Bind, Execute,
// Sync) and the router waits for its answer before it sends the client's
// statement: if it were pipelined and failed (the client can cancel it, or
// set statement_timeout), the client's statement would run under the
// tenant bound before. The error of a failed call is never forwarded as
// the server sent it, since its context may carry the parameters (with the
// client's log_parameter_max_length_on_error); the client gets its code and
// message, the router's hint and nothing else. docs/isolation.md has the
// design and its cost.
//
// In a transaction the client opened with BEGIN (which the router defers
// unless it names a tenant itself, see answerQuery) the call is pipelined
// instead, after the BEGIN and before the client's first statement, in the
// same network write, without a Sync of its own (pipelineEnter): there a
// failed call aborts the transaction, and the server skips the client's
// messages up to its Sync, so nothing runs under the earlier binding
// either; a rollback undoes the binding (boundInTx). That saves the round
// trip for the transactions that write most. Not before SET TRANSACTION
// SNAPSHOT, which must come first.
//
// Without a token (Config.BindingToken ""), the router binds with SET, as
// on servers without the library, where any client can do the same.

// enterStmt is the server-side name of the prepared call.
const enterStmt = "shardline_enter"

// enterParse prepares the call, with both parameters typed text (OID 25).
var enterParse = func() []byte {
	var m msgBuilder
	m.str(enterStmt).str("SELECT shardline.enter($1, $2)").int16(2).int32(25).int32(25)
	return appendMsg(nil, 'P', m.b)
}()

// enterExecute is Execute of the unnamed portal (all rows).
var enterExecute = func() []byte {
	var m msgBuilder
	m.str("").int32(0)
	return appendMsg(nil, 'E', m.b)
}()

// bindTenant makes be carry tenant, after the session settings in setup
// ("" for none), and waits for the server to confirm both. Responses the
// session still expects from be come first: they are drained (a Flush
// makes the server send them). On an error the connection is marked
// broken and the error is the router's own.
func (s *session) bindTenant(be *backend, tenant shardline.TenantID, setup string) error {
	if s.inFlight() {
		writeMsg(be.out, 'H', nil)
		if err := s.drain(); err != nil {
			return err
		}
		if s.skipToSync || s.be != be {
			// The server skips to the client's Sync (an error came
			// first): a Sync of ours would end that early. The binding
			// waits for the next statement.
			return nil
		}
	}
	waits := 1
	if setup != "" {
		be.out.Write(queryMsg(setup))
		waits++
	}
	s.writeEnterCall(be, tenant)
	writeMsg(be.out, 'S', nil)
	if err := be.out.Flush(); err != nil {
		return s.serverGone(err)
	}
	var setupErr, enterErr *Error
	for waits > 0 {
		typ, body, err := be.in.next()
		if err != nil {
			return s.serverGone(err)
		}
		switch typ {
		case '1':
			be.enterParsed = true
		case 'S':
			s.fwd(typ, body) // ParameterStatus of a setting the client set
		case 'E':
			e := codeAndMessage(body)
			if waits == 2 && setup != "" {
				setupErr = e
			} else {
				enterErr = e
			}
		case 'Z':
			waits--
			if len(body) == 1 {
				s.beStatus = body[0]
			}
		}
	}
	if setupErr != nil || enterErr != nil {
		be.broken = true
		be.tenant = unknownTenant
		be.applied = appliedUnknown
		if setupErr != nil {
			setupErr.Message = "a setting of this session failed on shard " + string(be.pool.shard) + ": " + setupErr.Message
			setupErr.Hint = "Correct or RESET the setting."
			return setupErr
		}
		return s.enterFailed(be, tenant, enterErr)
	}
	be.tenant = tenant
	s.r.metrics.bindings.Inc()
	return nil
}

// enterFailed logs a failed shardline.enter() and returns the client's
// error: the server's code and message, the router's hint.
func (s *session) enterFailed(be *backend, tenant shardline.TenantID, e *Error) *Error {
	s.logger().Warn("binding the tenant failed on the server", "shard", be.pool.shard, "tenant", string(tenant),
		"code", e.Code, "error", e.Message)
	e.Message = "could not bind tenant \"" + string(tenant) + "\" on shard " + string(be.pool.shard) + ": " + e.Message
	switch e.Code {
	case codeInvalidAuthorization:
		e.Hint = "The router's binding token does not match the shard's shardline.token_digests (docs/isolation.md)."
	case codeUndefinedFunction:
		e.Hint = "The shard lacks shardline.enter(): load the shardline_guard library and create the function (docs/isolation.md), or run the router without --binding-token-file."
	default:
		e.Hint = "The server connection was dropped; retry the transaction."
	}
	if e.Code == "" {
		e.Code = codeInternal
	}
	return e
}

// inFlight reports whether the session waits for responses from its
// server connection.
func (s *session) inFlight() bool {
	for i := range s.queue {
		if p := &s.queue[i]; p.synth == nil && !p.syncRFQ {
			return true
		}
	}
	return false
}

// pipelineEnter sends the binding call for tenant without a Sync, for the
// transaction the client opened: its answer is read in order with the
// rest (onEnterMessage).
func (s *session) pipelineEnter(be *backend, tenant shardline.TenantID) {
	s.writeEnterCall(be, tenant)
	be.tenant = tenant
	s.boundInTx = true
	s.push(pending{kind: 'E', swallow: true, internal: true, enter: true})
}

// onEnterMessage reads the answer to a pipelined binding call. An error
// fails the client's transaction: the server skips the client's messages
// up to its next Sync, so the client gets the router's error and, at its
// synchronization point, ReadyForQuery of a failed transaction, and the
// connection is dropped.
func (s *session) onEnterMessage(typ byte, body []byte) error {
	be := s.be
	switch typ {
	case '1':
		be.enterParsed = true
	case 'C':
		s.pop()
		s.r.metrics.bindings.Inc()
	case 'E':
		e := s.enterFailed(be, be.tenant, codeAndMessage(body))
		s.r.metrics.errors.WithLabelValues(e.Code).Inc()
		s.writeClient('E', errorResponse(e)[5:])
		synced := false
		for len(s.queue) > 0 {
			p := s.queue[0]
			if p.kind == 'P' && p.client != "" && p.synth == nil {
				s.forgetStmt(p.client)
			}
			if p.kind == 'S' || (p.kind == 'Q' && !p.internal) {
				synced = true
			}
			s.pop()
			if synced {
				break
			}
		}
		s.queue = s.queue[:0] // what follows is the router's own
		be.tenant = unknownTenant
		s.abortTransaction()
		if synced {
			s.writeClient('Z', []byte{s.status()})
		} else {
			s.skipToSync = true
		}
	case 'S':
		s.fwd(typ, body)
	}
	return nil
}

// writeEnterCall writes the call for tenant without a Sync: Parse of the
// statement when be lacks it, Bind with tenant and the token into the
// unnamed portal (results in text), Execute.
func (s *session) writeEnterCall(be *backend, tenant shardline.TenantID) {
	if !be.enterParsed {
		be.out.Write(enterParse)
	}
	s.mb.reset().str("").str(enterStmt).int16(0).int16(2)
	s.mb.int32(int32(len(tenant))).text(string(tenant))
	s.mb.int32(int32(len(s.r.cfg.BindingToken))).text(s.r.cfg.BindingToken)
	s.mb.int16(0)
	writeMsg(be.out, 'B', s.mb.b)
	be.out.Write(enterExecute)
}

// codeAndMessage is a server's ErrorResponse reduced to its SQLSTATE and
// primary message: what the router passes on of errors of its own calls.
func codeAndMessage(body []byte) *Error {
	return &Error{Code: string(errorField(body, 'C')), Message: string(errorField(body, 'M'))}
}
