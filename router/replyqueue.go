package router

// replyQueue is what a session owes its client, in order: one entry per
// response expected from a server or made by the router (see drain).
type replyQueue struct {
	queue []pending
}

// pending is one expected response, in the order the client will see them.
type pending struct {
	kind     byte   // the frontend message it answers ('P','B','D','E','C','S','Q')
	synth    []byte // the router's own response; nothing is read from the server
	syncRFQ  bool   // synthesize ReadyForQuery with the session's status
	swallow  bool   // read the server's response but do not forward it
	internal bool   // the router's own setup query: errors are logged
	token    bool   // the pipelined write-token query
	server   string // Parse: the server-side statement name
	client   string // Parse: the client's statement name
	set      *settingOp
	enter    bool // a pipelined shardline.enter() (enter.go)
}

// push queues p. It is not inlined: each inlined call gives its caller's
// frame a pending of its own (the compiler does not share them between
// calls), and the handlers' frames are on a session's stack while it waits
// for the server. With it inlined, route's frame is 592 bytes instead of
// 448 and handleParse's 712 instead of 464. TestIdleSessionStack checks
// that a session's deepest path fits a 4 KiB stack.
//
//go:noinline
func (s *session) push(p pending) { s.queue = append(s.queue, p) }

func (s *session) pop() {
	copy(s.queue, s.queue[1:])
	s.queue[len(s.queue)-1] = pending{}
	s.queue = s.queue[:len(s.queue)-1]
}
