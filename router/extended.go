package router

import (
	"bytes"
)

// This file handles the extended query protocol: Parse, Bind, Describe,
// Execute, Close, Sync and Flush.

// extError queues a router error in the extended protocol: the server-like
// behaviour is to skip messages until Sync.
func (s *session) extError(err error) error {
	if err := s.routerError(err); err != nil {
		return err
	}
	s.skipToSync = true
	return nil
}

func (s *session) handleParse(body []byte) error {
	if s.skipToSync {
		return nil
	}
	if s.txFailed {
		return s.extError(errInFailedTransaction())
	}
	name, rest, ok := cstring(body)
	query, types, ok2 := cstringBytes(rest)
	if !ok || !ok2 {
		return errBadMessage("Parse")
	}
	info := classify(query)
	virtual := info.kind == stmtRouterSet || info.kind == stmtRouterReset || info.kind == stmtRouterShow ||
		// BEGIN outside a transaction is answered by the router and sent
		// with the next statement, once it is known where that goes.
		// (Only a BEGIN the server cannot reject: see begin.go.)
		(info.kind == stmtBegin && !info.multi && s.be == nil && wellFormedBegin(query)) ||
		// So is SET TRANSACTION while such a BEGIN waits.
		(s.deferred != nil && s.be == nil && !info.multi && wellFormedSetTransaction(query)) ||
		(info.kind == stmtDeallocate && s.deallocateHere(&info))
	if virtual {
		if info.kind == stmtOther {
			info.kind = stmtSetTransaction
		}
		in := info
		in.text = string(query)
		s.putStmt(name, &prepared{virtual: &in, query: in.text, text: append([]byte(nil), query...)})
		s.push(pending{kind: 'P', synth: parseComplete})
		return nil
	}
	switch info.kind {
	case stmtForbidden:
		return s.extError(forbiddenErr())
	}
	if _, exists := s.stmts[name]; exists && name != "" {
		return s.extError(&Error{Code: codeDuplicatePreparedStmt, Message: "prepared statement \"" + name + "\" already exists",
			Hint: "Close or DEALLOCATE it first, or use another name."})
	}
	if err := s.route(query, s.readOnlyRoute(query)); err != nil {
		return s.extError(err)
	}
	s.pinned = s.pinned || info.pins
	if info.untracked {
		s.be.applied = appliedUnknown // reset before the connection's next transaction
	}
	if name == "" {
		prep := s.stmts[""]
		if prep == nil || prep.virtual != nil || !bytes.Equal(prep.parse[5:], body) {
			parse := appendMsg(nil, 'P', body)
			prep = &prepared{query: string(query), text: parse[6 : 6+len(query)], parse: parse, set: settingOpOf(&info, query)}
		} // else: the unnamed statement again (drivers re-parse it each time): reuse it
		s.putStmt("", prep)
		s.be.out.Write(prep.parse)
		s.unnamedOn = s.be
		s.push(pending{kind: 'P'})
		return nil
	}
	prep := &prepared{query: string(query), text: append([]byte(nil), query...), set: settingOpOf(&info, query)}
	prep.server = s.r.stmts.name(query, types)
	s.mb.reset().str(prep.server).bytes(query).byte1(0).bytes(types)
	prep.parse = appendMsg(nil, 'P', s.mb.b)
	s.putStmt(name, prep)
	if _, ok := s.be.prepared[prep.server]; ok {
		s.push(pending{kind: 'P', synth: parseComplete})
		return nil
	}
	s.be.out.Write(prep.parse)
	s.be.prepared[prep.server] = struct{}{}
	s.push(pending{kind: 'P', server: prep.server, client: name})
	return nil
}

// ensurePrepared prepares prep on the held server connection when it lacks
// it; the server's ParseComplete is not forwarded. The unnamed statement is
// parsed again on a connection the session took since it parsed it (a
// driver may parse and describe in one round trip and bind in the next,
// with a Sync between, when the connection went back to the pool).
func (s *session) ensurePrepared(prep *prepared) {
	if prep.server == "" {
		if s.unnamedOn != s.be {
			s.be.out.Write(prep.parse)
			s.unnamedOn = s.be
			s.push(pending{kind: 'P', swallow: true})
		}
		return
	}
	if _, ok := s.be.prepared[prep.server]; ok {
		return
	}
	s.be.out.Write(prep.parse)
	s.be.prepared[prep.server] = struct{}{}
	s.push(pending{kind: 'P', swallow: true, server: prep.server})
}

// putStmt records a client's prepared statement; the map is made on first
// use (most sessions prepare nothing through the extended protocol).
func (s *session) putStmt(name string, p *prepared) {
	if s.stmts == nil {
		s.stmts = make(map[string]*prepared)
	}
	if old := s.stmts[name]; old != nil && old.server != "" {
		s.r.stmts.drop(old.server)
	}
	if p.server != "" {
		s.r.stmts.hold(p.server)
	}
	s.stmts[name] = p
}

// forgetStmt removes a client's prepared statement, reporting whether it
// had one of that name.
func (s *session) forgetStmt(name string) bool {
	p, ok := s.stmts[name]
	if !ok {
		return false
	}
	if p.server != "" {
		s.r.stmts.drop(p.server)
	}
	delete(s.stmts, name)
	return true
}

// forgetStmts removes every prepared statement of the client.
func (s *session) forgetStmts() {
	for name := range s.stmts {
		s.forgetStmt(name)
	}
}

// sweepStmts closes, on the held server connection, the shared statements
// no session holds any more (see sharedStmts); the server's CloseComplete
// is not forwarded.
func (s *session) sweepStmts() {
	dead := s.r.stmts.sweep(s.be, nil)
	for _, name := range dead {
		s.mb.reset().byte1('S').str(name)
		writeMsg(s.be.out, 'C', s.mb.b)
		s.push(pending{kind: 'C', swallow: true})
	}
}

// lookupStmt finds a client statement for Bind or Describe.
func (s *session) lookupStmt(name string) (*prepared, error) {
	if prep, ok := s.stmts[name]; ok {
		return prep, nil
	}
	return nil, errNoStatement(name)
}

func (s *session) handleBind(body []byte) error {
	if s.skipToSync {
		return nil
	}
	if s.txFailed {
		return s.extError(errInFailedTransaction())
	}
	portal, rest, ok := cstring(body)
	stmt, params, ok2 := cstring(rest)
	if !ok || !ok2 {
		return errBadMessage("Bind")
	}
	prep, err := s.lookupStmt(stmt)
	if err != nil {
		return s.extError(err)
	}
	if prep.virtual != nil || prep.set != nil {
		if s.portals == nil {
			s.portals = make(map[string]*prepared)
		}
		s.portals[portal] = prep
	} else if len(s.portals) > 0 {
		delete(s.portals, portal)
	}
	if prep.virtual != nil {
		s.push(pending{kind: 'B', synth: bindComplete})
		return nil
	}
	if err := s.route(prep.text, s.readOnlyRoute(prep.text)); err != nil {
		return s.extError(err)
	}
	s.ensurePrepared(prep)
	if prep.server == "" {
		writeMsg(s.be.out, 'B', body)
	} else {
		s.mb.reset().str(portal).str(prep.server).bytes(params)
		writeMsg(s.be.out, 'B', s.mb.b)
	}
	s.lastBound = prep.text
	s.push(pending{kind: 'B'})
	return nil
}

func (s *session) handleDescribe(body []byte) error {
	if s.skipToSync {
		return nil
	}
	if s.txFailed {
		return s.extError(errInFailedTransaction())
	}
	if len(body) < 2 {
		return errBadMessage("Describe")
	}
	kind := body[0]
	name, _, ok := cstring(body[1:])
	if !ok {
		return errBadMessage("Describe")
	}
	var prep *prepared
	switch kind {
	case 'S':
		p, err := s.lookupStmt(name)
		if err != nil {
			return s.extError(err)
		}
		prep = p
	case 'P':
		prep = s.portals[name]
	default:
		return &Error{Code: codeProtocolViolation, Message: "invalid Describe target " + strconvQuote(kind)}
	}
	if prep != nil && prep.virtual != nil {
		if kind == 'S' {
			s.push(pending{kind: 'D', synth: []byte{'t', 0, 0, 0, 6, 0, 0}})
		}
		if prep.virtual.kind == stmtRouterShow {
			s.push(pending{kind: 'D', synth: textRowDescription(prep.virtual.name)})
		} else {
			s.push(pending{kind: 'D', synth: noData})
		}
		return nil
	}
	var q []byte
	if prep != nil {
		q = prep.text
	}
	if s.be == nil && kind == 'P' {
		return s.extError(&Error{Code: codeInvalidCursorName, Message: "portal \"" + name + "\" does not exist"})
	}
	if err := s.route(q, s.readOnlyRoute(q)); err != nil {
		return s.extError(err)
	}
	if kind == 'S' {
		s.ensurePrepared(prep)
	}
	if kind == 'S' && prep.server != "" {
		s.mb.reset().byte1('S').str(prep.server)
		writeMsg(s.be.out, 'D', s.mb.b)
	} else {
		writeMsg(s.be.out, 'D', body)
	}
	s.push(pending{kind: 'D'})
	return nil
}

func (s *session) handleExecute(body []byte) error {
	if s.skipToSync {
		return nil
	}
	if s.txFailed {
		return s.extError(errInFailedTransaction())
	}
	portal, _, ok := cstring(body)
	if !ok {
		return errBadMessage("Execute")
	}
	prep := s.portals[portal]
	if prep != nil && prep.virtual != nil {
		if err := s.execRouterStatement(prep.virtual, true); err != nil {
			return s.extError(err)
		}
		return nil
	}
	if s.be == nil {
		return s.extError(&Error{Code: codeInvalidCursorName, Message: "portal \"" + portal + "\" does not exist",
			Hint: "Bind and Execute in the same transaction."})
	}
	writeMsg(s.be.out, 'E', body)
	if prep == nil && s.tokenAfter(s.lastBound) {
		s.tokenNext = true
	}
	p := pending{kind: 'E'}
	if prep != nil {
		p.set = prep.set
	}
	s.push(p)
	return nil
}

func (s *session) handleClose(body []byte) error {
	if s.skipToSync {
		return nil
	}
	if len(body) < 2 {
		return errBadMessage("Close")
	}
	name, _, ok := cstring(body[1:])
	if !ok {
		return errBadMessage("Close")
	}
	switch body[0] {
	case 'S':
		// The server's statement goes when no session holds it (sweepStmts).
		s.forgetStmt(name)
	case 'P':
		if s.portals[name] == nil && s.be != nil {
			writeMsg(s.be.out, 'C', body)
			s.push(pending{kind: 'C'})
			return nil
		}
		delete(s.portals, name)
	default:
		return &Error{Code: codeProtocolViolation, Message: "invalid Close target " + strconvQuote(body[0])}
	}
	s.push(pending{kind: 'C', synth: closeComplete})
	return nil
}

func (s *session) handleSync() error {
	s.skipToSync = false
	if s.be != nil {
		writeMsg(s.be.out, 'S', nil)
		s.push(pending{kind: 'S'})
		if s.tokenNext {
			s.tokenNext = false
			s.pipelineToken()
		}
		if err := s.be.out.Flush(); err != nil {
			return s.serverGone(err)
		}
	} else {
		s.push(pending{kind: 'S', syncRFQ: true})
	}
	return s.drain()
}

func (s *session) handleFlush() error {
	if s.be != nil {
		writeMsg(s.be.out, 'H', nil)
		if err := s.be.out.Flush(); err != nil {
			return s.serverGone(err)
		}
	}
	return s.drain()
}
