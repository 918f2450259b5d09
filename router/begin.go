package router

// The router answers BEGIN (and SET TRANSACTION after it) before it knows
// where the transaction goes, and sends it with the transaction's first
// statement (deferBegin). The client has then been told the BEGIN worked,
// so a BEGIN the server would reject must never be deferred: a failed
// BEGIN leaves no transaction, and the statements the client sent in the
// one it believes open would commit one by one. So only a BEGIN of
// PostgreSQL's grammar is deferred; anything else goes to a server, whose
// error the client gets as it would from PostgreSQL.
//
//	BEGIN [ WORK | TRANSACTION ] [ transaction_mode [, ...] ]
//	START TRANSACTION [ transaction_mode [, ...] ]
//	SET TRANSACTION transaction_mode [, ...]
//
//	transaction_mode: ISOLATION LEVEL { SERIALIZABLE | REPEATABLE READ |
//	  READ COMMITTED | READ UNCOMMITTED } | READ WRITE | READ ONLY |
//	  [ NOT ] DEFERRABLE
//
// SET TRANSACTION SNAPSHOT can fail at run time, so it is not deferred.

// wellFormedBegin reports whether q is one BEGIN or START TRANSACTION of
// the grammar above.
func wellFormedBegin(q []byte) bool {
	w := words{q: q}
	switch w.nextWord() {
	case "begin":
		if t := w.peek(); t == "work" || t == "transaction" {
			w.next()
		}
	case "start":
		if w.nextWord() != "transaction" {
			return false
		}
	default:
		return false
	}
	return transactionModes(&w, true)
}

// wellFormedSetTransaction reports whether q is one SET TRANSACTION of the
// grammar above.
func wellFormedSetTransaction(q []byte) bool {
	w := words{q: q}
	if w.nextWord() != "set" || w.nextWord() != "transaction" {
		return false
	}
	return transactionModes(&w, false)
}

// transactionModes consumes a list of transaction modes (separated by
// commas or spaces, as PostgreSQL accepts) up to an optional semicolon and
// the end; empty says whether the list may be empty.
func transactionModes(w *words, empty bool) bool {
	n := 0
	for {
		t := w.next()
		if t.kind == tokEOF || t.kind == tokPunct && t.text == ";" {
			return (n > 0 || empty) && w.next().kind == tokEOF
		}
		if n > 0 && t.kind == tokPunct && t.text == "," {
			t = w.next()
		}
		if t.kind != tokWord || !transactionMode(w, t.text) {
			return false
		}
		n++
	}
}

// transactionMode consumes the rest of one mode whose first word is first.
func transactionMode(w *words, first string) bool {
	switch first {
	case "isolation":
		if w.nextWord() != "level" {
			return false
		}
		switch w.nextWord() {
		case "serializable":
			return true
		case "repeatable":
			return w.nextWord() == "read"
		case "read":
			l := w.nextWord()
			return l == "committed" || l == "uncommitted"
		}
		return false
	case "read":
		m := w.nextWord()
		return m == "write" || m == "only"
	case "not":
		return w.nextWord() == "deferrable"
	case "deferrable":
		return true
	}
	return false
}

// nextWord returns the next token if it is a keyword or identifier (lower
// case), else "".
func (w *words) nextWord() string {
	if t := w.next(); t.kind == tokWord {
		return t.text
	}
	return ""
}

// peek returns what nextWord would, without consuming it.
func (w *words) peek() string {
	pos := w.pos
	t := w.nextWord()
	w.pos = pos
	return t
}
