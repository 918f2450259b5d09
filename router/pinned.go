package router

import (
	"errors"
	"os"
	"time"
)

// waitPinnedIdle waits, for an idle pinned session, until the client sends
// something or its server connection does (LISTEN notifications, notices,
// parameter changes), relaying the server's asynchronous messages. It
// returns nil when a client message is ready to read.
//
// Two reads wait at once; whichever finishes first stops the other by
// moving its connection's read deadline to now. Only pinned sessions take
// this path, so the transaction hot path has no extra goroutine.
func (s *session) waitPinnedIdle() error {
	s.acquireOut()
	for s.in.buffered() == 0 {
		be := s.be
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := be.in.r.Peek(1); err == nil || !isTimeout(err) {
				_ = s.conn.SetReadDeadline(time.Now()) // wake the client read
			}
		}()
		_, clientErr := s.in.r.Peek(1)
		_ = be.conn.SetReadDeadline(time.Now())
		<-done
		_ = be.conn.SetReadDeadline(time.Time{})
		_ = s.conn.SetReadDeadline(time.Time{})

		for be.in.buffered() > 0 {
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
		if clientErr != nil && !isTimeout(clientErr) {
			return clientErr
		}
		if clientErr == nil {
			return nil
		}
	}
	return nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
