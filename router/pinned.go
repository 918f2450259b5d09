package router

import (
	"errors"
)

// waitPinnedIdle waits, for an idle pinned session, until the client sends
// something or its server connection does (LISTEN notifications, notices,
// parameter changes), relaying the server's asynchronous messages. It
// returns nil when a client message (or the end of the client's stream) is
// ready to read.
func (s *session) waitPinnedIdle() error {
	s.acquireOut()
	be := s.be
	for s.in.buffered() == 0 {
		if be.in.buffered() == 0 && !be.conn.Ready() && !s.conn.Ready() {
			if err := s.task.WaitReadable(s.conn, be.conn); err != nil {
				return err
			}
			continue
		}
		for be.in.buffered() > 0 || be.conn.Ready() {
			typ, body, err := be.in.next()
			if err != nil {
				return s.serverGone(err)
			}
			switch typ {
			case 'A', 'N', 'S':
				writeMsg(s.out, typ, body)
			case 'E':
				// The server ends the connection (for example an
				// administrator's pg_terminate_backend).
				writeMsg(s.out, typ, body)
				return s.serverGone(errors.New("server reported an error on an idle connection"))
			default:
				return s.serverGone(errors.New("unexpected message " + strconvQuote(typ) + " on an idle connection"))
			}
		}
		if err := s.out.Flush(); err != nil {
			return err
		}
		if s.conn.Ready() {
			return nil
		}
	}
	return nil
}
