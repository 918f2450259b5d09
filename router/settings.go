package router

import (
	"github.com/shardline/shardline"
	"strings"
)

// Session settings: the router's own (shardline.*), and the ordinary
// settings a session makes, which are replayed on whichever server
// connection serves its next transaction.

// execRouterStatement runs a statement the router answers itself and queues
// its response. extended leaves out the RowDescription (Describe sends it).
func (s *session) execRouterStatement(info *stmtInfo, extended bool) error {
	switch info.kind {
	case stmtBegin:
		if s.be == nil && s.deferred == nil {
			s.deferBegin([]byte(info.text))
		}
		s.push(pending{kind: 'E', synth: commandComplete("BEGIN")})
		return nil
	case stmtSetTransaction:
		if ro, explicit := beginReadOnly([]byte(info.text)); explicit {
			s.txReadOnly = ro
		}
		s.deferred = append(s.deferred, queryMsg(info.text))
		s.push(pending{kind: 'E', synth: commandComplete("SET")})
		return nil
	case stmtDeallocate:
		tag := "DEALLOCATE"
		if info.name == "" {
			tag = "DEALLOCATE ALL"
			s.forgetStmts()
		} else if !s.forgetStmt(info.name) {
			return errNoStatement(info.name)
		}
		s.push(pending{kind: 'E', synth: commandComplete(tag)})
		return nil
	case stmtRouterSet, stmtRouterReset:
		reset := info.kind == stmtRouterReset || info.isDefault
		if err := s.setRouterSetting(info.name, info.value, reset); err != nil {
			return err
		}
		tag := "SET"
		if info.kind == stmtRouterReset {
			tag = "RESET"
		}
		s.push(pending{kind: 'E', synth: commandComplete(tag)})
		return nil
	}
	v, err := s.showRouterSetting(info.name)
	if err != nil {
		return err
	}
	if !extended {
		s.push(pending{kind: 'Q', synth: textRowDescription(info.name)})
	}
	s.push(pending{kind: 'E', synth: textDataRow(v)})
	s.push(pending{kind: 'E', synth: commandComplete("SHOW")})
	return nil
}

// deallocateHere reports whether the router answers a DEALLOCATE itself
// (execRouterStatement): a statement the client prepared through the
// protocol has another name on the servers (see prepared), where the
// server would not find it. On a pinned session's connection, which may
// hold statements of SQL PREPARE, the server answers for names the router
// does not keep, and DEALLOCATE ALL goes to it too. In a failed
// transaction the server answers (with 25P02).
func (s *session) deallocateHere(info *stmtInfo) bool {
	if s.status() == 'E' {
		return false
	}
	if !s.pinned || s.be == nil {
		return true
	}
	if info.name != "" {
		_, ok := s.stmts[info.name]
		return ok
	}
	s.forgetStmts()
	clear(s.be.prepared) // the server drops every statement of the connection
	return false
}

func (s *session) setRouterSetting(name, value string, reset bool) error {
	switch name {
	case "shardline.tenant":
		t := shardline.TenantID(value)
		if reset {
			t = s.cred.defaultTenant()
		} else {
			if err := shardline.ValidateTenant(value); err != nil {
				return errInvalidTenant("in shardline.tenant", err)
			}
			if err := s.checkTenant(t, "shardline.tenant"); err != nil {
				return err
			}
		}
		if s.be != nil && t != "" && t != s.txTenant {
			if err := s.rebindInTransaction(t); err != nil {
				return err
			}
		}
		s.tenant = t
		return nil
	case "shardline.shard", "shardline.lsn":
		return &Error{Code: codeCantChangeRuntimeParam, Message: "parameter \"" + name + "\" cannot be changed",
			Hint: "shardline.shard follows the tenant (SET shardline.tenant); shardline.lsn follows your writes (SET shardline.min_lsn)."}
	case "shardline.target":
		if reset {
			s.target = s.r.defaultTarget
			return nil
		}
		t, err := parseTarget(value)
		if err != nil {
			return &Error{Code: codeInvalidParameter, Message: err.Error(), Hint: "SET shardline.target = 'primary' | 'replica' | 'auto'."}
		}
		s.target = t
		return nil
	case "shardline.max_lag":
		if reset {
			s.maxLag = s.r.defaultMaxLag
			return nil
		}
		b, err := parseLagBound(value)
		if err != nil {
			return &Error{Code: codeInvalidParameter, Message: err.Error(), Hint: "SET shardline.max_lag = '500ms' (a staleness) or '16MB' (WAL bytes)."}
		}
		s.maxLag = b
		return nil
	case "shardline.max_wait":
		if reset {
			s.maxWait = 0
			return nil
		}
		d, err := parseWait(value)
		if err != nil {
			return &Error{Code: codeInvalidParameter, Message: err.Error(), Hint: "SET shardline.max_wait = '100ms'."}
		}
		s.maxWait = d
		return nil
	case "shardline.min_lsn":
		if reset {
			return nil
		}
		tok, err := shardline.ParseToken(value)
		if err != nil {
			return &Error{Code: codeInvalidParameter, Message: err.Error(),
				Hint: "Use the value of SHOW shardline.lsn (or the shardline.lsn ParameterStatus) of the session that wrote."}
		}
		s.advanceToken(tok)
		return nil
	}
	return unknownSetting(name)
}

// advanceToken makes later reads wait for tok: on the same shard the later
// position wins; a token of another shard replaces the old one (reads of a
// tenant whose shard differs from the token's then use the primary).
func (s *session) advanceToken(tok shardline.Token) {
	if tok.Shard == "" {
		return
	}
	if tok.Shard != s.token.Shard || tok.LSN > s.token.LSN {
		s.token = tok
	}
}

func (s *session) showRouterSetting(name string) (string, error) {
	switch name {
	case "shardline.tenant":
		return string(s.tenant), nil
	case "shardline.shard":
		if s.be != nil {
			return string(s.txShard), nil
		}
		if s.tenant == "" {
			return "", nil
		}
		pl, err := s.r.placement()
		if err != nil {
			return "", err
		}
		return string(pl.Locate(s.tenant).Shard), nil
	case "shardline.target":
		return s.target.String(), nil
	case "shardline.max_lag":
		return s.maxLag.text, nil
	case "shardline.max_wait":
		return s.maxWait.String(), nil
	case "shardline.lsn", "shardline.min_lsn":
		return s.token.String(), nil
	}
	return "", unknownSetting(name)
}

func unknownSetting(name string) error {
	return &Error{Code: codeUndefinedObject, Message: "unrecognized configuration parameter \"" + name + "\"",
		Hint: "The router knows shardline.tenant, shardline.shard, shardline.target, shardline.max_lag, shardline.max_wait, shardline.lsn and shardline.min_lsn."}
}

// settingOpOf returns the session-setting change a statement makes, if the
// router tracks it.
func settingOpOf(info *stmtInfo, q []byte) *settingOp {
	switch info.kind {
	case stmtSessionSet:
		return &settingOp{kind: stmtSessionSet, name: info.name, sql: string(trimStatement(q))}
	case stmtSessionReset, stmtResetAll:
		return &settingOp{kind: info.kind, name: info.name}
	}
	return nil
}

func trimStatement(q []byte) []byte {
	w := words{q: q}
	return w.rest()
}

// applySettings makes the settings of a finished transaction part of the
// session.
func (s *session) applySettings() {
	if len(s.pendingSets) == 0 {
		return
	}
	for _, op := range s.pendingSets {
		switch op.kind {
		case stmtSessionSet:
			s.params = upsertSetting(s.params, setting{name: op.name, sql: op.sql})
		case stmtSessionReset:
			s.params = removeSetting(s.params, op.name)
		case stmtResetAll:
			s.params = s.startupSettings()
		}
		switch {
		case op.name == "default_transaction_read_only" || op.kind == stmtResetAll:
			s.defaultReadOnly = s.settingIsOn("default_transaction_read_only")
		case op.name == "session characteristics": // SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY
			if ro, explicit := beginReadOnly([]byte(op.sql)); explicit {
				s.defaultReadOnly = ro
			}
		}
	}
	s.pendingSets = s.pendingSets[:0]
	s.paramSQL = joinSettings(s.params)
}

// settingIsOn reads a boolean session setting from its SET statement.
func (s *session) settingIsOn(name string) bool {
	for _, st := range s.params {
		if st.name == name {
			w := words{q: []byte(st.sql)}
			w.next() // SET
			w.next() // name
			if t := w.next(); t.text != "=" && t.text != "to" {
				return false
			}
			return truthy(w.next().text)
		}
	}
	return false
}

func upsertSetting(list []setting, st setting) []setting {
	for i := range list {
		if list[i].name == st.name {
			list[i].sql = st.sql
			return list
		}
	}
	return append(list, st)
}

func removeSetting(list []setting, name string) []setting {
	for i := range list {
		if list[i].name == name {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

func joinSettings(list []setting) string {
	var sb strings.Builder
	for _, st := range list {
		sb.WriteString(st.sql)
		sb.WriteByte(';')
	}
	return sb.String()
}

// discardAll forgets the session's settings and prepared statements (the
// server-side statements go once no session holds them).
func (s *session) discardAll() {
	s.params = s.startupSettings()
	s.paramSQL = joinSettings(s.params)
	s.forgetStmts()
	clear(s.portals)
	s.tenant = s.cred.defaultTenant()
}

// startupSettings are the settings the client asked for at startup: what
// RESET ALL and DISCARD ALL return the session to.
func (s *session) startupSettings() []setting {
	var list []setting
	for _, kv := range s.st.params {
		if strings.HasPrefix(kv[0], "shardline.") {
			continue
		}
		list = upsertSetting(list, setting{name: kv[0], sql: "SET " + quoteIdent(kv[0]) + " = " + quoteLiteral(kv[1])})
	}
	return list
}

// quoteIdent quotes an identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// validateSettings applies the session's startup settings once on a server
// connection, as PostgreSQL checks startup parameters, so an unknown
// setting or a bad value fails the connection instead of every transaction
// later. Validated setting lists are remembered (bounded), so the usual
// case costs nothing.
func (s *session) validateSettings() error {
	if s.paramSQL == "" || s.r.knownSettings(s.paramSQL) {
		return nil
	}
	pl, err := s.r.placement()
	if err != nil {
		return err
	}
	pool, err := s.r.poolFor(pl, anyShard(pl), s.loop)
	if err != nil {
		return err
	}
	b, err := s.acquire(pool, nil)
	if err != nil {
		return err
	}
	b.out.Write(queryMsg("RESET ALL;" + s.paramSQL))
	b.applied, b.tenant = s.paramSQL, ""
	if err := b.out.Flush(); err != nil {
		b.broken = true
		pool.release(b)
		return &Error{Code: codeConnectionFailure, Fatal: true, Message: "lost a server connection while checking startup settings", Err: err}
	}
	var serverErr []byte
	for {
		typ, body, err := b.in.next()
		if err != nil {
			b.broken = true
			pool.release(b)
			return &Error{Code: codeConnectionFailure, Fatal: true, Message: "lost a server connection while checking startup settings", Err: err}
		}
		if typ == 'E' && serverErr == nil {
			serverErr = append([]byte(nil), body...)
		}
		if typ == 'Z' {
			break
		}
	}
	if serverErr != nil {
		b.applied = "\x00failed"
		pool.release(b)
		return &serverFatal{body: serverErr}
	}
	pool.release(b)
	s.r.rememberSettings(s.paramSQL)
	return nil
}
