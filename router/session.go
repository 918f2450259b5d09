package router

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/internal/netloop"
)

// session is one client connection. Its goroutine owns every field; only
// current (read by cancel requests) is shared.
type session struct {
	r        *Router
	conn     *netloop.Conn
	task     *netloop.Task // the event-loop coroutine the session runs as
	loop     int           // index of task's loop: whose pools the session takes from
	poolWait waiter        // for pool waits (its task is task)
	in       msgReader
	out      *bufio.Writer
	log      *slog.Logger
	st       *startup
	cred     credential // what the login allows (auth.go)

	pid, secret uint32
	current     atomic.Pointer[backend] // the held server connection, for cancel

	// Session state that outlives transactions.
	sessionSettings
	stmts   map[string]*prepared
	portals map[string]*prepared // portals bound to router-answered or SET statements

	// Transaction state.
	txBinding
	skipToSync bool // an error in extended protocol: ignore until Sync

	lastBound []byte // the statement of the last Bind (for write-token pipelining)
	tokenNext bool   // the batch ends with a write: pipeline the write token after its Sync
	tokenErr  bool   // the pipelined token query failed
	tokenLSN  shardline.LSN
	heldRFQ   byte // the client's ReadyForQuery status, held until the token arrives

	replyQueue
	sinceDrain int // bytes of extended-protocol messages forwarded since the last drain (drainAfter)
	forwarded  int // descriptions written to the client (ParseComplete, RowDescription, ...)
	results    int // rows, results, errors and ReadyForQuery written to the client
	retryState
	mb msgBuilder
}

// prepared is a client's prepared statement. Named statements are prepared
// on servers under a name derived from their text and parameter types, so
// sessions share them and any server connection can serve them.
type prepared struct {
	server  string // name on the servers; "" for the unnamed statement
	parse   []byte // the whole Parse message under the server name (the unnamed one: as sent)
	query   string
	text    []byte     // query as bytes (read only)
	virtual *stmtInfo  // a statement the router answers itself
	set     *settingOp // a session SET to remember when it succeeds
}

func newSession(r *Router, t *netloop.Task, loop int, c *netloop.Conn, br *bufio.Reader, st *startup) *session {
	s := &session{
		r:        r,
		conn:     c,
		task:     t,
		loop:     loop,
		poolWait: waiter{task: t},
		in:       msgReader{r: br},
		out:      r.getWriter(c),
		st:       st,
	}
	s.beStatus = 'I'
	s.target, s.maxLag = r.defaultTarget, r.defaultMaxLag
	s.secret = rand.Uint32() // ChaCha8-seeded: unpredictable, and no system call
	return s
}

// logger returns the session's logger, made on first use: most sessions
// never log.
func (s *session) logger() *slog.Logger {
	if s.log == nil {
		s.log = s.r.log.With("remote", s.conn.RemoteAddr().String(), "user", s.st.user)
	}
	return s.log
}

// greet validates the startup request of an authenticated session
// (authenticate) and sends what a server sends after authentication:
// AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery.
func (s *session) greet() error {
	s.tenant = s.cred.defaultTenant()
	if s.st.database != s.r.cfg.Database {
		return &Error{Code: codeInvalidCatalog, Fatal: true,
			Message: "database \"" + s.st.database + "\" does not exist",
			Hint:    "Connect to database \"" + s.r.cfg.Database + "\": the router serves one logical database."}
	}
	reported := map[string]string{}
	for _, kv := range s.st.params {
		name, value := kv[0], kv[1]
		if strings.HasPrefix(name, "shardline.") {
			if err := s.setRouterSetting(name, value, false); err != nil {
				e := asRouterError(err)
				e.Fatal = true
				return e
			}
			continue
		}
		reported[name] = value
	}
	s.params = s.startupSettings()
	s.paramSQL = joinSettings(s.params)
	s.defaultReadOnly = truthy(reported["default_transaction_read_only"])

	server, err := s.serverParams()
	if err != nil {
		return err
	}
	if err := s.validateSettings(); err != nil {
		return err
	}
	if s.st.minor > 0 || len(s.st.unsupported) > 0 {
		// We speak 3.0 and no protocol extensions.
		s.mb.reset().int32(0).int32(int32(len(s.st.unsupported)))
		for _, o := range s.st.unsupported {
			s.mb.str(o)
		}
		writeMsg(s.out, 'v', s.mb.b)
	}
	s.out.Write(authOK)
	g := s.r.greetingFor(server)
	for i, k := range g.keys {
		if cv, ok := reported[k]; ok {
			writeParameterStatus(s.out, k, cv)
		} else {
			s.out.Write(g.msgs[i])
		}
	}
	if _, ok := server["application_name"]; !ok {
		if v, ok := reported["application_name"]; ok {
			writeParameterStatus(s.out, "application_name", v)
		}
	}
	s.mb.reset().int32(int32(s.pid)).int32(int32(s.secret))
	writeMsg(s.out, 'K', s.mb.b)
	s.out.Write(readyIdle)
	return s.out.Flush()
}

// serverParams returns the ParameterStatus set of a real server, making a
// connection to the first shard if the router has not made one yet.
func (s *session) serverParams() (map[string]string, error) {
	if p := s.r.serverParams.Load(); p != nil {
		return *p, nil
	}
	pl, err := s.r.placement()
	if err != nil {
		return nil, err
	}
	pool, err := s.r.poolFor(pl, anyShard(pl), s.loop)
	if err != nil {
		return nil, err
	}
	b, err := s.acquire(pool, nil)
	if err != nil {
		return nil, err
	}
	pool.release(b)
	if p := s.r.serverParams.Load(); p != nil {
		return *p, nil
	}
	return map[string]string{}, nil
}

// serverFatal is a server's ErrorResponse the router relays as FATAL.
type serverFatal struct{ body []byte }

func (e *serverFatal) Error() string {
	return "server rejected a startup setting: " + errorMessage(e.body).String()
}

// fail sends a fatal error to the client.
func (s *session) fail(err error) {
	s.acquireOut()
	var sf *serverFatal
	if errors.As(err, &sf) {
		body := sf.body
		// Relay the server's error with its severity raised to FATAL.
		var m msgBuilder
		for len(body) > 1 {
			f := body[0]
			v, rest, ok := cstring(body[1:])
			if !ok {
				break
			}
			if f == 'S' || f == 'V' {
				v = "FATAL"
			}
			m.byte1(f).str(v)
			body = rest
		}
		m.byte1(0)
		writeMsg(s.out, 'E', m.b)
		_ = s.out.Flush()
		return
	}
	e := asRouterError(err)
	e.Fatal = true
	s.r.metrics.errors.WithLabelValues(e.Code).Inc()
	s.out.Write(errorResponse(e))
	_ = s.out.Flush()
}

// run serves client messages until Terminate, a client error or router
// shutdown. It always leaves no transaction open on a server.
func (s *session) run() {
	defer s.endTransaction(true)
	for {
		if s.in.buffered() == 0 {
			if err := s.flushAll(); err != nil {
				return
			}
			if s.pinned && s.be != nil && s.beStatus == 'I' && len(s.queue) == 0 {
				if err := s.waitPinnedIdle(); err != nil {
					if !isClientGone(err) {
						s.fail(err)
					}
					return
				}
			}
			s.releaseOut() // nothing to send while waiting for the client
		}
		typ, body, err := s.in.next()
		s.acquireOut()
		if err != nil {
			if errors.Is(err, errProtocol) {
				s.fail(&Error{Code: codeProtocolViolation, Message: err.Error()})
			}
			return
		}
		if err := s.handle(typ, body); err != nil {
			if !isClientGone(err) {
				s.fail(err)
			}
			return
		}
		if typ == 'X' {
			return
		}
	}
}

func isClientGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, errClientTerminated)
}

// acquire takes a server connection from p for the session.
func (s *session) acquire(p *pool, prefer *backend) (*backend, error) {
	b, err := p.acquire(s.r.ctx, &s.poolWait, prefer)
	if err != nil {
		return nil, err
	}
	b.conn.Attach(s.task)
	return b, nil
}

// acquireOut takes a write buffer from the router's pool if the session
// gave its own back; releaseOut gives a flushed one back. An idle session
// then holds no write buffer (memory per idle connection).
func (s *session) acquireOut() {
	if s.out == nil {
		s.out = s.r.getWriter(s.conn)
	}
}

func (s *session) releaseOut() {
	if s.out != nil && s.out.Buffered() == 0 {
		s.out.Reset(nil)
		s.r.writers.Put(s.out)
		s.out = nil
	}
}

func (s *session) flushAll() error {
	if s.be != nil && s.be.out.Buffered() > 0 {
		if err := s.be.out.Flush(); err != nil {
			return s.serverGone(err)
		}
	}
	return s.out.Flush()
}

// handle processes one client message. A returned error ends the session.
func (s *session) handle(typ byte, body []byte) error {
	if s.recording {
		s.record(typ, body)
	}
	s.curTyp, s.curBody = typ, body
	err := s.dispatch(typ, body)
	if typ == 'S' || typ == 'Q' {
		if err != nil && s.canRetry(err) {
			return s.retryOnPrimary()
		}
		s.stopRecording()
	}
	return err
}

func (s *session) dispatch(typ byte, body []byte) error {
	switch typ {
	case 'Q':
		delete(s.stmts, "") // a simple Query destroys the unnamed statement, as on a server
		return s.handleQuery(body)
	case 'P':
		return s.pipelined(body, s.handleParse(body))
	case 'B':
		return s.pipelined(body, s.handleBind(body))
	case 'D':
		return s.pipelined(body, s.handleDescribe(body))
	case 'E':
		return s.pipelined(body, s.handleExecute(body))
	case 'C':
		return s.pipelined(body, s.handleClose(body))
	case 'S':
		return s.handleSync()
	case 'H':
		return s.handleFlush()
	case 'X':
		return nil
	case 'd', 'c', 'f':
		// Copy data outside a copy: the server would ignore it too.
		return nil
	default:
		return &Error{Code: codeProtocolViolation, Message: "invalid frontend message type " + strconvQuote(typ)}
	}
}

// drainAfter is how many bytes of extended-protocol messages the router
// forwards, with no Sync or Flush from the client, before it asks the
// server for what it has and relays it: a Flush of its own, then a drain.
//
// Without it a long pipeline (a pgx batch of thousands of statements)
// stalls. The router reads the server only when it drains, and a server
// whose results do not fit in the socket between them stops reading until
// they are read; then the router's writes of the rest of the pipeline
// block too. The drain costs a round trip per 64 KiB of statements, and
// 64 KiB is below what the sockets between router and server hold by
// default (a Unix socket's 208 KiB send buffer; loopback TCP's 16 KiB send
// buffer with a 128 KiB receive buffer), so the router's writes never
// wait for a server that waits for it. A client that pipelines and never
// reads still stalls, as it would against PostgreSQL.
const drainAfter = 64 << 10

// pipelined counts an extended-protocol message the router forwarded
// (err is its handler's) and drains once drainAfter bytes went out since
// the last drain.
func (s *session) pipelined(body []byte, err error) error {
	if err != nil {
		return err
	}
	s.sinceDrain += len(body) + 5
	if s.sinceDrain < drainAfter || s.be == nil || s.skipToSync {
		return nil
	}
	return s.handleFlush()
}

func strconvQuote(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return "'" + string(b) + "'"
	}
	return "0x" + string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15])
}

// --- simple query protocol ---

func (s *session) handleQuery(body []byte) error {
	q := trimNul(body)
	info := classify(q)
	if s.txFailed {
		return s.queryInFailedTx(q)
	}
	if answered, err := s.answerQuery(&info, q, body); answered {
		return err
	}
	if err := s.route(q, s.readOnlyRoute(q)); err != nil {
		return s.queryError(err)
	}
	s.pinned = s.pinned || info.pins
	if info.untracked {
		s.be.applied = appliedUnknown // reset before the connection's next transaction
	}
	return s.sendQuery(body, settingOpOf(&info, q), s.tokenAfter(q))
}

// answerQuery answers the simple Query the router answers itself (router
// settings, forbidden statements, DISCARD ALL without a server connection,
// a BEGIN or SET TRANSACTION whose shard is not known yet) and reports
// whether it did. It is apart from handleQuery to keep the frame that
// every query puts on the session's stack small (see push).
func (s *session) answerQuery(info *stmtInfo, q, body []byte) (bool, error) {
	switch info.kind {
	case stmtRouterSet, stmtRouterReset, stmtRouterShow:
		if err := s.execRouterStatement(info, false); err != nil {
			return true, s.queryError(err)
		}
		return true, s.endQuery()
	case stmtForbidden:
		return true, s.queryError(forbiddenErr())
	case stmtDeallocate:
		if s.deallocateHere(info) {
			if err := s.execRouterStatement(info, false); err != nil {
				return true, s.queryError(err)
			}
			return true, s.endQuery()
		}
	case stmtDiscardAll:
		if s.be == nil && s.deferred == nil {
			s.discardAll()
			return true, s.answer("DISCARD ALL")
		}
	case stmtBegin:
		tenant, err := s.resolveTenant(q)
		if err != nil {
			return true, s.queryError(err)
		}
		// Also when the session's tenant is known (but not when the BEGIN
		// names one): the guard's binding call must follow the BEGIN and
		// goes with the first statement then, in one network write
		// (enter.go); and a SET shardline.tenant right after BEGIN
		// (SQLAlchemy's pattern) may still pick the tenant.
		if s.be == nil && s.deferred == nil && (tenant == s.tenant || s.target != targetPrimary) && !info.multi && wellFormedBegin(q) {
			// The shard (or whether a replica may serve it) is not known
			// until the next statement: answer now, send it with that one.
			s.deferBegin(q)
			return true, s.answer("BEGIN")
		}
	}
	if s.deferred != nil && s.be == nil && !info.multi && wellFormedSetTransaction(q) {
		if ro, explicit := beginReadOnly(q); explicit {
			s.txReadOnly = ro
		}
		s.deferred = append(s.deferred, appendMsg(nil, 'Q', body))
		return true, s.answer("SET")
	}
	return false, nil
}

// answer completes a simple Query the router answered itself with tag.
func (s *session) answer(tag string) error {
	s.push(pending{kind: 'Q', synth: commandComplete(tag)})
	return s.endQuery()
}

// endQuery ends a simple Query the router answered (in part) itself: the
// ReadyForQuery, after whatever is queued before it.
func (s *session) endQuery() error {
	s.push(pending{kind: 'Q', syncRFQ: true})
	return s.drain()
}

// sendQuery forwards a simple Query to the held connection and drains.
func (s *session) sendQuery(body []byte, op *settingOp, token bool) error {
	writeMsg(s.be.out, 'Q', body)
	s.push(pending{kind: 'Q', set: op})
	if token {
		s.pipelineToken()
	}
	if err := s.be.out.Flush(); err != nil {
		return s.serverGone(err)
	}
	return s.drain()
}

// queryError reports a router error for a simple query: ErrorResponse then
// ReadyForQuery. Inside a transaction it aborts the transaction as a server
// error would.
func (s *session) queryError(err error) error {
	if err := s.routerError(err); err != nil {
		return err
	}
	return s.endQuery()
}

// routerError queues an error the router made. A transaction in progress is
// aborted: its server connection is closed (the server rolls back) and the
// session answers as a server in a failed transaction would.
func (s *session) routerError(err error) error {
	e := asRouterError(err)
	if e.Fatal {
		return e
	}
	s.r.metrics.errors.WithLabelValues(e.Code).Inc()
	if s.status() != 'I' {
		s.abortTransaction()
	}
	s.push(pending{kind: 'E', synth: errorResponse(e)})
	return nil
}

func (s *session) queryInFailedTx(q []byte) error {
	w := words{q: q}
	switch w.next().text {
	case "rollback", "abort", "commit", "end":
		s.txFailed = false
		return s.answer("ROLLBACK")
	}
	s.push(pending{kind: 'E', synth: errorResponse(errInFailedTransaction())})
	return s.endQuery()
}

func forbiddenErr() error {
	return &Error{Code: codeInsufficientPrivilege, Message: "shardline.* settings can only be changed with a plain SET or RESET statement of their own",
		Hint: "Send SET shardline.tenant = 'acme' as a statement by itself, or use the startup option."}
}

func trimNul(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == 0 {
		return b[:n-1]
	}
	return b
}

// --- routing ---

// serverGone reports a lost server connection; the session ends, as it
// would had it been connected to that server.
func (s *session) serverGone(err error) error {
	if s.be != nil {
		s.be.broken = true
		shard := s.be.pool.shard
		s.endTransaction(true)
		return &Error{Code: codeConnectionFailure, Fatal: true,
			Message: "lost the connection to shard " + string(shard),
			Hint:    "Reconnect and retry if the transaction's outcome allows it.", Err: err}
	}
	return err
}

// --- session settings ---
