package router

import (
	"bytes"
	"strings"
)

// stmtKind is what the router needs to know about a statement's text.
type stmtKind uint8

const (
	stmtOther          stmtKind = iota
	stmtRouterSet               // SET shardline.x = v: answered by the router
	stmtRouterReset             // RESET shardline.x
	stmtRouterShow              // SHOW shardline.x
	stmtSessionSet              // SET name ...: tracked and replayed on other backends
	stmtSessionReset            // RESET name
	stmtResetAll                // RESET ALL
	stmtDiscardAll              // DISCARD ALL: answered by the router
	stmtBegin                   // BEGIN / START TRANSACTION
	stmtForbidden               // writes the tenant binding behind the router's back
	stmtSetTransaction          // SET TRANSACTION while a BEGIN is deferred (extended protocol)
	stmtDeallocate              // DEALLOCATE [PREPARE] name | ALL: name "" for ALL
)

// stmtInfo is the classification of one statement text.
type stmtInfo struct {
	kind  stmtKind
	name  string // setting name, lower case (for SET/RESET/SHOW)
	value string // SET value (router settings only)
	// isDefault is set for SET x TO DEFAULT (same as RESET).
	isDefault bool
	// multi is set when the text holds more than one statement.
	multi bool
	// text is the statement, kept only for router-answered statements that
	// are forwarded later (a deferred BEGIN).
	text string
	// pins is set when the statement leaves state on the server connection
	// that outlives the transaction (LISTEN, temporary tables, session
	// advisory locks, SQL PREPARE, cursors WITH HOLD): the session then
	// keeps its server connection. In a multi-statement query any
	// statement counts.
	pins bool
	// untracked is set when the statement may change session settings the
	// router does not track (SET inside a multi-statement query,
	// set_config(..., false)): the server connection is then reset before
	// its next transaction, so no other session sees them.
	untracked bool
}

// classify looks at the first words of q. It is called on every statement
// and allocates only for the statements it recognises.
func classify(q []byte) stmtInfo {
	var info stmtInfo
	w := words{q: q}
	w.skipSpace()
	if w.pos >= len(q) {
		return info
	}
	info.pins = pinsSession(q, q[w.pos]|0x20)
	info.untracked = indexFold(q, "set_config") >= 0
	if mayHaveLaterStatement(q) {
		later := false
		forEachLaterStatement(q, func(stmt []byte) bool {
			later = true
			info.pins = info.pins || pinsSession(stmt, stmt[0]|0x20)
			info.untracked = info.untracked || isWordFold(stmt, "set") || isWordFold(stmt, "reset")
			return true
		})
		// The first statement's SET is tracked only when alone.
		info.untracked = info.untracked || later && (isWordFold(q[w.pos:], "set") || isWordFold(q[w.pos:], "reset"))
	}
	switch q[w.pos] | 0x20 {
	case 's', 'r', 'd', 'b':
	default:
		if mentionsBinding(q) {
			info.kind = stmtForbidden
		}
		return info
	}
	if isWordFold(q[w.pos:], "select") { // the common case, without allocating
		if mentionsBinding(q) {
			info.kind = stmtForbidden
		}
		return info
	}
	info.multi = isMulti(q)
	first := w.next()
	switch first.text {
	case "set":
		classifySet(&w, &info)
	case "reset":
		t := w.next()
		switch {
		case t.text == "all":
			info.kind = stmtResetAll
		case t.kind == tokWord && strings.HasPrefix(t.text, "shardline."):
			info.kind, info.name = stmtRouterReset, t.text
		case t.text == "session": // RESET SESSION AUTHORIZATION
			info.kind, info.name = stmtSessionReset, "session authorization"
		case t.text == "time": // RESET TIME ZONE
			info.kind, info.name = stmtSessionReset, "timezone"
		case t.kind == tokWord || t.kind == tokQuotedIdent:
			info.kind, info.name = stmtSessionReset, strings.ToLower(t.text)
		}
	case "show":
		t := w.next()
		if t.kind == tokWord && strings.HasPrefix(t.text, "shardline.") {
			info.kind, info.name = stmtRouterShow, t.text
		}
	case "discard":
		if w.next().text == "all" {
			info.kind = stmtDiscardAll
		}
	case "deallocate":
		classifyDeallocate(&w, &info)
	case "begin", "start":
		info.kind = stmtBegin
	}
	if info.kind == stmtOther && mentionsBinding(q) {
		info.kind = stmtForbidden
	}
	if info.multi && info.kind != stmtOther && info.kind != stmtForbidden && info.kind != stmtBegin {
		// A router or tracked setting inside a multi-statement query cannot be
		// split out reliably: the binding check still applies, the tracking
		// does not.
		if strings.HasPrefix(info.name, "shardline.") {
			info.kind = stmtForbidden
		} else {
			info.kind, info.name = stmtOther, ""
		}
	}
	if info.multi && info.kind != stmtForbidden && mentionsBinding(q) {
		// A later statement writes the binding, whatever the first is.
		info.kind = stmtForbidden
	}
	return info
}

// classifyDeallocate recognises DEALLOCATE [PREPARE] { name | ALL }: the
// router answers it for the statements it keeps (see deallocate).
func classifyDeallocate(w *words, info *stmtInfo) {
	t := w.next()
	if t.kind == tokWord && t.text == "prepare" {
		t = w.next()
	}
	switch t.kind {
	case tokWord, tokQuotedIdent:
	default:
		return
	}
	if end := w.next(); end.kind != tokEOF && end.text != ";" {
		return
	}
	info.kind = stmtDeallocate
	if t.kind == tokWord && t.text == "all" {
		return // name "" is ALL
	}
	info.name = t.text
}

func classifySet(w *words, info *stmtInfo) {
	t := w.next()
	switch t.text {
	case "local", "transaction", "constraints":
		// Transaction-scoped: nothing to remember after the transaction.
		if t.text == "local" {
			if n := w.next(); strings.HasPrefix(n.text, "shardline.") {
				info.kind, info.name = stmtForbidden, n.text
			}
		}
		return
	case "session":
		t = w.next()
		switch t.text {
		case "characteristics":
			info.kind, info.name = stmtSessionSet, "session characteristics"
			return
		case "authorization":
			info.kind, info.name = stmtSessionSet, "session authorization"
			return
		}
	}
	switch t.text {
	case "time": // SET TIME ZONE
		info.kind, info.name = stmtSessionSet, "timezone"
		return
	case "names":
		info.kind, info.name = stmtSessionSet, "client_encoding"
		return
	case "role":
		info.kind, info.name = stmtSessionSet, "role"
		return
	case "schema":
		info.kind, info.name = stmtSessionSet, "search_path"
		return
	}
	if t.kind != tokWord && t.kind != tokQuotedIdent {
		return
	}
	name := strings.ToLower(t.text)
	if !strings.HasPrefix(name, "shardline.") {
		info.kind, info.name = stmtSessionSet, name
		return
	}
	info.kind, info.name = stmtRouterSet, name
	op := w.next()
	if op.text != "=" && op.text != "to" {
		info.kind = stmtForbidden // malformed: let nothing through
		return
	}
	v := w.next()
	switch v.kind {
	case tokString, tokQuotedIdent:
		info.value = v.text
	case tokWord:
		if v.text == "default" {
			info.isDefault = true
		} else {
			info.value = string(v.raw)
		}
	default:
		info.kind = stmtForbidden
		return
	}
	if rest := w.rest(); len(rest) > 0 {
		info.kind = stmtForbidden
	}
}

// isMulti reports whether q holds a semicolon outside literals and comments
// followed by more than white space.
func isMulti(q []byte) bool {
	if !mayHaveLaterStatement(q) {
		return false
	}
	multi := false
	forEachLaterStatement(q, func([]byte) bool {
		multi = true
		return false
	})
	return multi
}

// mayHaveLaterStatement reports, without lexing, whether q may hold a
// statement after a semicolon: false when it has none, or only semicolons
// and white space after its first (a trailing semicolon, as pgbench and
// psql send).
func mayHaveLaterStatement(q []byte) bool {
	k := bytes.IndexByte(q, ';')
	if k < 0 {
		return false
	}
	for _, c := range q[k:] {
		switch c {
		case ';', ' ', '\t', '\n', '\r', '\f':
		default:
			return true
		}
	}
	return false
}

// forEachLaterStatement calls fn with the text of each statement of a
// multi-statement query after the first, from its first word on, until fn
// returns false.
func forEachLaterStatement(q []byte, fn func(stmt []byte) bool) {
	for i := 0; i < len(q); {
		if j := skipToken(q, i); j > i {
			i = j
			continue
		}
		switch c := q[i]; {
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '/' && i+1 < len(q) && q[i+1] == '*':
			w := words{q: q, pos: i}
			w.skipSpace()
			i = max(w.pos, i+1)
		case c == ';':
			w := words{q: q, pos: i + 1}
			w.skipSpace()
			if w.pos < len(q) && q[w.pos] != ';' && !fn(q[w.pos:]) {
				return
			}
			i = max(w.pos, i+1)
		default:
			i++
		}
	}
}

// mentionsBinding reports whether q may write a shardline.* setting on the
// backend directly (SET shardline.x inside a longer query, or set_config on
// it), which would let a client rebind its backend to another tenant.
func mentionsBinding(q []byte) bool {
	i := indexFold(q, "shardline.")
	if i < 0 {
		return false
	}
	if indexFold(q, "set_config") >= 0 {
		return true
	}
	for ; i >= 0; i = nextFold(q, i+1, "shardline.") {
		// Look back over spaces, quotes and SESSION/LOCAL for SET or RESET.
		j := i
		for j > 0 && (q[j-1] == ' ' || q[j-1] == '\t' || q[j-1] == '\n' || q[j-1] == '\r' || q[j-1] == '"') {
			j--
		}
		for _, kw := range []string{"session", "local"} {
			if j >= len(kw) && strings.EqualFold(string(q[j-len(kw):j]), kw) {
				j -= len(kw)
				for j > 0 && (q[j-1] == ' ' || q[j-1] == '\t' || q[j-1] == '\n' || q[j-1] == '\r') {
					j--
				}
			}
		}
		for _, kw := range []string{"set", "reset"} {
			if j >= len(kw) && strings.EqualFold(string(q[j-len(kw):j]), kw) &&
				(j == len(kw) || !isIdentByte(q[j-len(kw)-1])) {
				return true
			}
		}
	}
	return false
}

// indexFold is a case-insensitive bytes.Index for an ASCII lower-case needle.
func indexFold(q []byte, needle string) int { return nextFold(q, 0, needle) }

// nextFold is indexFold from index from on. It runs on every statement, so
// a needle with a byte that is no letter
// (set_config's '_', shardline.'s '.') is found from that byte, whose case
// does not fold, with bytes.IndexByte: a fast scan rather than a loop.
func nextFold(q []byte, from int, needle string) int {
	for a := 0; a < len(needle); a++ {
		c := needle[a]
		if c >= 'a' && c <= 'z' {
			continue
		}
		for i := from; i+len(needle) <= len(q); {
			j := bytes.IndexByte(q[i+a:], c)
			if j < 0 {
				return -1
			}
			start := i + j
			if start+len(needle) > len(q) {
				return -1
			}
			if strings.EqualFold(string(q[start:start+len(needle)]), needle) {
				return start
			}
			i = start + 1
		}
		return -1
	}
	first := needle[0]
	for i := from; i+len(needle) <= len(q); i++ {
		if q[i]|0x20 != first {
			continue
		}
		if strings.EqualFold(string(q[i:i+len(needle)]), needle) {
			return i
		}
	}
	return -1
}

// pinsSession reports whether q leaves session state on the server (see
// stmtInfo.pins). first is q's first non-blank byte, lower-cased.
func pinsSession(q []byte, first byte) bool {
	switch first {
	case 'l', 'c', 'p', 'd':
		w := words{q: q}
		switch w.next().text {
		case "listen", "prepare":
			return true
		case "create":
			switch t := w.next().text; t {
			case "temp", "temporary":
				return true
			case "local", "global":
				t2 := w.next().text
				return t2 == "temp" || t2 == "temporary"
			}
		case "declare":
			return indexFold(q, "with hold") >= 0
		}
	}
	if i := indexFold(q, "advisory_"); i >= 0 {
		for ; i >= 0; i = nextFold(q, i+1, "advisory_") {
			rest := q[i+len("advisory_"):]
			if len(rest) >= 4 && strings.EqualFold(string(rest[:4]), "lock") {
				return true // pg_advisory_lock, pg_try_advisory_lock (not the _xact_ ones)
			}
		}
	}
	return false
}

// isWordFold reports whether q starts with the keyword kw (ASCII lower case)
// followed by a non-identifier byte or the end.
func isWordFold(q []byte, kw string) bool {
	if len(q) < len(kw) {
		return false
	}
	for i := 0; i < len(kw); i++ {
		if q[i]|0x20 != kw[i] {
			return false
		}
	}
	return len(q) == len(kw) || !isIdentByte(q[len(kw)])
}
