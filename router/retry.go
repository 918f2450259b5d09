package router

import "errors"

// An autocommit read that a replica was serving is retried once on the
// primary when the replica fails before any row (or result, error or
// ReadyForQuery) of it reached the client. Descriptions the client already
// has (ParseComplete, BindComplete, RowDescription: the same for the same
// statement anywhere) are not sent twice. The client messages of that batch (from the one that chose the
// replica to its Sync or Query) are kept and processed again; nothing else
// is ever retried, since a statement whose outcome is unknown must not run
// twice.
type retryState struct {
	recording    bool
	avoidReplica bool
	recMember    string
	recMark      int // s.forwarded when recording started
	recResults   int // s.results when recording started
	skipFwd      int // responses to drop: the client has them from the first attempt
	recLog       []recordedMsg
	curTyp       byte
	curBody      []byte
}

type recordedMsg struct {
	typ  byte
	body []byte
}

// startRecording is called by route when it picked a replica for an
// autocommit read; the message being handled is the batch's first.
func (s *session) startRecording(member string) {
	s.recording = true
	s.recMember = member
	s.recMark = s.forwarded
	s.recResults = s.results
	s.recLog = s.recLog[:0]
	s.record(s.curTyp, s.curBody)
}

func (s *session) record(typ byte, body []byte) {
	s.recLog = append(s.recLog, recordedMsg{typ, append([]byte(nil), body...)})
}

func (s *session) stopRecording() {
	s.recording = false
	s.recLog = s.recLog[:0]
}

// canRetry: the batch was recording, no result of it reached the client,
// and the replica connection failed.
func (s *session) canRetry(err error) bool {
	var re *Error
	return s.recording && s.results == s.recResults && errors.As(err, &re) && re.Code == codeConnectionFailure
}

func (s *session) retryOnPrimary() error {
	msgs := s.recLog
	s.recLog = nil
	s.recording = false
	s.r.mon.markDown(s.recMember)
	s.logger().Warn("replica failed during an autocommit read; retrying on the primary", "member", s.recMember)
	s.queue = s.queue[:0]
	s.skipToSync = false
	for _, m := range msgs { // the first attempt registered these names
		if m.typ == 'P' {
			if name, _, ok := cstring(m.body); ok && name != "" {
				delete(s.stmts, name)
			}
		}
	}
	s.skipFwd = s.forwarded - s.recMark
	s.avoidReplica = true
	defer func() { s.avoidReplica = false }()
	for _, m := range msgs {
		s.curTyp, s.curBody = m.typ, m.body
		if err := s.dispatch(m.typ, m.body); err != nil {
			return err
		}
	}
	return nil
}
