package router

import (
	"bytes"
	"errors"
	"log/slog"

	"github.com/shardline/shardline"
)

// drain delivers the responses of every queued entry to the client, in
// order: the router's own responses as they come up, the server's as they
// arrive. It returns when the queue is empty.
func (s *session) drain() error {
	s.sinceDrain = 0 // everything forwarded is flushed by now, and answered when this returns
	for len(s.queue) > 0 {
		p := &s.queue[0]
		if p.synth != nil || p.syncRFQ {
			if p.synth != nil {
				s.writeClient(p.synth[0], p.synth[5:])
			}
			if p.syncRFQ {
				s.writeClient('Z', []byte{s.status()})
			}
			s.pop()
			continue
		}
		if s.be == nil {
			s.queue = s.queue[:0]
			return &Error{Code: codeInternal, Fatal: true, Message: "router: response expected without a server connection"}
		}
		if s.be.in.buffered() == 0 {
			if err := s.flushAll(); err != nil {
				return err
			}
		}
		typ, body, err := s.be.in.next()
		if err != nil {
			return s.serverGone(err)
		}
		if err := s.onServerMessage(typ, body); err != nil {
			return err
		}
	}
	return nil
}

// onServerMessage handles one server message for the head of the queue.
func (s *session) onServerMessage(typ byte, body []byte) error {
	p := &s.queue[0]
	if p.token {
		return s.onTokenMessage(typ, body)
	}
	if p.enter {
		return s.onEnterMessage(typ, body)
	}
	forward := !p.swallow
	switch typ {
	case 'E':
		if invalidatesPlans(body) {
			s.r.stmts.invalidate()
		}
		if p.internal {
			// The connection's settings or tenant binding are now unknown:
			// tell the client, and never pool the connection again.
			s.logger().Warn("session setup statement failed on the server", "shard", s.be.pool.shard, "error", errorMessage(body))
			s.be.broken = true
		}
		s.fwd(typ, body)
		if p.kind == 'Q' {
			s.errSeen = true
			return nil
		}
		s.afterExtendedError()
		return nil
	case 'Z':
		if len(body) != 1 {
			return s.serverGone(errProtocol)
		}
		status := body[0]
		s.beStatus = status
		if forward && len(s.queue) > 1 && s.queue[1].token {
			// The write token was pipelined after this batch: the client's
			// ReadyForQuery waits for it (see onTokenMessage).
			s.heldRFQ = status
			s.pop()
			s.onReady(status)
			return nil
		}
		if forward {
			if status == 'I' && s.txWrote {
				// The token's round trip reuses the read buffer body points
				// into: forward the status from a copy.
				if err := s.takeWriteToken(); err != nil {
					return err
				}
				body = []byte{status}
			}
			s.fwd(typ, body)
		}
		s.pop()
		s.onReady(status)
		return nil
	case 'N', 'A':
		if !p.internal {
			s.fwd(typ, body)
		}
		return nil
	case 'C':
		if forward {
			s.lastRollback = string(trimNul(body)) == "ROLLBACK"
			if p.set != nil {
				s.pendingSets = append(s.pendingSets, *p.set)
			}
			if !s.txWrote && isWriteTag(body) {
				s.txWrote = true
			}
			if isDDLTag(body) {
				s.r.stmts.invalidate()
			}
			s.fwd(typ, body)
		}
		if p.kind == 'E' {
			s.pop()
		}
		return nil
	case 'I', 's':
		if forward {
			s.fwd(typ, body)
		}
		if p.kind == 'E' {
			s.pop()
		}
		return nil
	case 'G':
		s.txWrote = true
		if forward {
			s.fwd(typ, body)
		}
		return s.copyIn(p.kind == 'E')
	case '1', '2', '3':
		if forward {
			s.fwd(typ, body)
		}
		s.pop()
		return nil
	case 'T', 'n':
		if forward {
			s.fwd(typ, body)
		}
		if p.kind == 'D' {
			s.pop()
		}
		return nil
	}
	if forward {
		s.fwd(typ, body)
	}
	return nil
}

// fwd forwards one server message to the client, but for the guard's
// report that the session made temporary objects (tempObjectsReport).
func (s *session) fwd(typ byte, body []byte) {
	if typ == 'S' && s.tempObjectsReport(body) {
		return
	}
	s.writeClient(typ, body)
}

// tempObjectsParam is the setting by which the guard library reports that
// a session has a temporary namespace (guard/shardline_guard.c).
const tempObjectsParam = "shardline.temp_objects"

// tempObjectsReport reports whether ParameterStatus body is the guard's
// tempObjectsParam, and pins the session when it is on: a temporary
// relation shadows the tables of its name for every later session of the
// connection, and the router sees no CREATE TEMP in a function or a DO
// block.
func (s *session) tempObjectsReport(body []byte) bool {
	name, rest, ok := cstringBytes(body)
	if !ok || string(name) != tempObjectsParam {
		return false
	}
	if v, _, _ := cstringBytes(rest); string(v) == "on" {
		s.pinned = true
	}
	return true
}

// writeClient writes one response message to the client, counting it for
// the retry rule (retry.go); during a retry it drops the responses the
// client already has.
func (s *session) writeClient(typ byte, body []byte) {
	switch typ {
	case '1', '2', '3', 't', 'T', 'n': // descriptions: the same on any member
		if s.skipFwd > 0 {
			s.skipFwd--
			return
		}
		s.forwarded++
	case 'N', 'S', 'A': // asynchronous: harmless if repeated
	default: // rows, results, errors, ReadyForQuery
		s.results++
	}
	writeMsg(s.out, typ, body)
}

// takeWriteToken runs when a transaction that wrote has committed on a
// primary, before its ReadyForQuery reaches the client: one round trip
// reads a WAL position at or after the commit, which becomes the session's
// token and is reported as ParameterStatus shardline.lsn.
func (s *session) takeWriteToken() error {
	s.txWrote = false
	if s.beReplica || s.errSeen || s.lastRollback || s.r.cfg.NoWriteTokens {
		return nil
	}
	be := s.be
	be.out.Write(writeTokenQuery)
	if err := be.out.Flush(); err != nil {
		return s.serverGone(err)
	}
	var lsn shardline.LSN
	var perr error
	for {
		typ, body, err := be.in.next()
		if err != nil {
			return s.serverGone(err)
		}
		switch typ {
		case 'D':
			// One column: int16 count, int32 length, the text.
			if len(body) > 6 {
				lsn, perr = shardline.ParseLSN(string(body[6:]))
			}
		case 'E':
			perr = errors.New(errorMessage(body).String())
		case 'Z':
			if perr != nil {
				s.logger().Warn("read-your-writes token not taken", "shard", be.pool.shard, "err", perr)
				return nil
			}
			s.r.metrics.writeTokens.Inc()
			s.advanceToken(shardline.Token{Shard: s.txShard, LSN: lsn})
			writeParameterStatus(s.out, "shardline.lsn", s.token.String())
			return nil
		}
	}
}

var writeTokenQuery = queryMsg("SELECT pg_current_wal_insert_lsn()::text")

// tokenAfter reports whether the write-token query should be pipelined
// after statement q: q commits a transaction that wrote, or q is an
// autocommit write. Then the token costs no round trip of its own; other
// write transactions take it with one (takeWriteToken).
func (s *session) tokenAfter(q []byte) bool {
	if s.be == nil || s.beReplica || s.r.cfg.NoWriteTokens {
		return false
	}
	w := words{q: q}
	w.skipSpace()
	rest := q[w.pos:]
	if s.beStatus == 'T' {
		return s.txWrote && (isWordFold(rest, "commit") || isWordFold(rest, "end")) && !isMulti(q)
	}
	if s.beStatus != 'I' || isMulti(q) {
		return false
	}
	for _, kw := range []string{"insert", "update", "delete", "merge"} {
		if isWordFold(rest, kw) {
			return true
		}
	}
	return false
}

// pipelineToken sends the write-token query right behind the client's
// batch, in the same network write.
func (s *session) pipelineToken() {
	s.be.out.Write(writeTokenQuery)
	s.tokenErr, s.tokenLSN = false, 0
	s.push(pending{kind: 'Q', swallow: true, token: true})
}

// onTokenMessage reads the pipelined token query's response; at its end the
// token and then the client's held ReadyForQuery are sent.
func (s *session) onTokenMessage(typ byte, body []byte) error {
	switch typ {
	case 'D':
		if len(body) > 6 {
			lsn, err := shardline.ParseLSN(string(body[6:]))
			s.tokenLSN, s.tokenErr = lsn, s.tokenErr || err != nil
		}
	case 'E':
		s.tokenErr = true
		s.logger().Warn("read-your-writes token not taken", "shard", s.be.pool.shard, "error", errorMessage(body))
	case 'Z':
		if len(body) != 1 {
			return s.serverGone(errProtocol)
		}
		status := body[0]
		s.beStatus = status
		s.pop()
		// A token read inside a still-open transaction (a deferred BEGIN
		// went ahead of the write) is before the commit: drop it, and the
		// commit takes the token.
		if status == 'I' && !s.tokenErr && s.tokenLSN != 0 {
			s.r.metrics.writeTokens.Inc()
			s.advanceToken(shardline.Token{Shard: s.txShard, LSN: s.tokenLSN})
			writeParameterStatus(s.out, "shardline.lsn", s.token.String())
			s.txWrote = false
		}
		s.fwd('Z', []byte{s.heldRFQ})
		s.heldRFQ = 0
		s.onReady(status)
	}
	return nil
}

// afterExtendedError mirrors the server, which skips everything up to the
// next Sync after an error: the entries up to the Sync get no response.
func (s *session) afterExtendedError() {
	for len(s.queue) > 0 && s.queue[0].kind != 'S' {
		p := s.queue[0]
		if p.kind == 'P' && p.server != "" && p.synth == nil {
			delete(s.be.prepared, p.server)
			if p.client != "" {
				s.forgetStmt(p.client)
			}
		}
		s.pop()
	}
	if len(s.queue) == 0 {
		s.skipToSync = true
	}
}

// onReady runs when the server reports ReadyForQuery: settings made by a
// committed transaction become the session's, and the server connection goes
// back to its pool once the session is idle with nothing in flight.
func (s *session) onReady(status byte) {
	switch status {
	case 'I':
		if !s.errSeen && !s.lastRollback {
			if len(s.pendingSets) > 0 {
				s.applySettings()
				if s.be != nil {
					s.be.applied = appliedUnknown // replay from scratch next time
				}
			}
		} else {
			s.pendingSets = s.pendingSets[:0]
			if s.boundInTx && s.be != nil {
				s.be.tenant = unknownTenant // the rollback undid the binding
			}
		}
		s.boundInTx = false
		s.errSeen = false
		s.lastRollback = false
		if len(s.queue) == 0 && !s.skipToSync {
			s.endTransaction(false)
		}
	case 'E':
		s.errSeen = true
	}
}

// copyIn relays COPY FROM STDIN data from the client until CopyDone or
// CopyFail. In the extended protocol the server ignores a Sync that the
// client sent before the copy started, so its queue entry goes too.
//
// The server may speak during the copy: a notice per row from a trigger, or
// an error that ends the copy. A server whose messages are not read stops
// reading, so the router relays them while the client still sends: before
// it waits for the client, and whenever a write to the server would wait
// for room (WriteUntilReadable). An error ends the copy on the server's
// side at once: the client has it then, and what it still sends of the
// copy is dropped, as the server drops it.
func (s *session) copyIn(extended bool) error {
	if extended {
		for i := range s.queue {
			if s.queue[i].kind == 'S' && s.queue[i].synth == nil && !s.queue[i].syncRFQ {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
	}
	if err := s.flushAll(); err != nil {
		return err
	}
	be := s.be
	c := copyOut{s: s}
	for {
		if s.in.buffered() == 0 {
			if ended, err := c.flush(); err != nil || ended {
				return err
			}
			if err := s.out.Flush(); err != nil {
				return s.abortCopy(err)
			}
			if !s.conn.Ready() {
				if be.in.buffered() == 0 && !be.conn.Ready() {
					if err := s.task.WaitReadable(s.conn, be.conn); err != nil {
						return s.abortCopy(err)
					}
				}
				if ended, err := s.relayDuringCopy(); err != nil || ended {
					return err
				}
				continue
			}
		}
		typ, body, err := s.in.next()
		if err != nil {
			return s.abortCopy(err)
		}
		switch typ {
		case 'd', 'H', 'S': // Flush and Sync: ignored by the server during COPY
			c.buf = appendMsg(c.buf, typ, body)
			if len(c.buf) >= copyFlushAt {
				if ended, err := c.flush(); err != nil || ended {
					return err
				}
			}
		case 'c', 'f':
			c.buf = appendMsg(c.buf, typ, body)
			_, err := c.flush()
			return err
		case 'X':
			return s.abortCopy(errClientTerminated)
		default:
			return s.abortCopy(&Error{Code: codeProtocolViolation, Fatal: true, Message: "unexpected message " + strconvQuote(typ) + " during COPY from stdin"})
		}
	}
}

// abortCopy ends a copy whose client is gone or broke the protocol: the
// server connection is shut down at once, so that the server ends the
// COPY (it cannot finish it) even while it and the router wait to send to
// each other, and is never used again.
func (s *session) abortCopy(err error) error {
	s.be.broken = true
	s.be.conn.Shutdown()
	return err
}

// copyFlushAt is how much copy data the router gathers before it writes to
// the server.
const copyFlushAt = 32 << 10

// copyOut is the copy data on its way to the server (see copyIn).
type copyOut struct {
	s   *session
	buf []byte
}

// flush writes what was gathered, relaying the server's messages whenever
// the write would wait. It reports ended when the server ended the copy
// with an error: what is left of the data is dropped.
func (c *copyOut) flush() (ended bool, err error) {
	s := c.s
	for len(c.buf) > 0 {
		n, readable, err := s.be.conn.WriteUntilReadable(c.buf)
		c.buf = c.buf[:copy(c.buf, c.buf[n:])]
		if err != nil {
			return false, s.serverGone(err)
		}
		if readable {
			if ended, err := s.relayDuringCopy(); err != nil || ended {
				c.buf = c.buf[:0]
				return ended, err
			}
			if err := s.out.Flush(); err != nil {
				return false, s.abortCopy(err)
			}
		}
	}
	return false, nil
}

// relayDuringCopy relays the server's asynchronous messages (notices,
// parameter changes, notifications) that arrived during a copy, without
// waiting. It reports ended when the server sent anything else (an error):
// the copy is over on its side, and drain relays the rest.
func (s *session) relayDuringCopy() (ended bool, err error) {
	be := s.be
	for be.in.buffered() > 0 || be.conn.Ready() {
		typ, err := be.in.peekType()
		if err != nil {
			return false, s.serverGone(err)
		}
		switch typ {
		case 'N', 'S', 'A':
		default:
			return true, nil
		}
		typ, body, err := be.in.next()
		if err != nil {
			return false, s.serverGone(err)
		}
		s.fwd(typ, body)
	}
	return false, nil
}

// errorMessage extracts the M field of an ErrorResponse body, for logs.
func errorMessage(body []byte) slog.Value {
	if m := errorField(body, 'M'); m != nil {
		return slog.StringValue(string(m))
	}
	return slog.StringValue("?")
}

// errorField returns field f of an ErrorResponse or NoticeResponse body.
func errorField(body []byte, f byte) []byte {
	for len(body) > 1 {
		typ := body[0]
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return nil
		}
		if typ == f {
			return body[1 : 1+end]
		}
		body = body[2+end:]
	}
	return nil
}
