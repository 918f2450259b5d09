package router

import (
	"bytes"
	"strings"
)

// This file holds the small lexical scanners the router runs on statement
// text: finding comments outside literals, and reading the first words of a
// statement. They never allocate on the common path and never panic on any
// input (see the fuzz tests).

// forEachComment calls fn with the body of every /* */ comment in q that is
// not inside a string literal, quoted identifier, dollar-quoted string or line
// comment, until fn returns false. Nested comments are handled as PostgreSQL
// does: the outermost comment's body is reported.
func forEachComment(q []byte, fn func(body []byte) bool) {
	n := len(q)
	for i := 0; i < n; {
		c := q[i]
		if j := skipToken(q, i); j > i {
			i = j
			continue
		}
		switch {
		case c == '-' && i+1 < n && q[i+1] == '-':
			j := bytes.IndexByte(q[i:], '\n')
			if j < 0 {
				return
			}
			i += j + 1
		case c == '/' && i+1 < n && q[i+1] == '*':
			start := i + 2
			depth := 1
			j := start
			for j < n && depth > 0 {
				if q[j] == '/' && j+1 < n && q[j+1] == '*' {
					depth++
					j += 2
				} else if q[j] == '*' && j+1 < n && q[j+1] == '/' {
					depth--
					j += 2
				} else {
					j++
				}
			}
			if depth > 0 { // unterminated: not a comment the server accepts
				return
			}
			if !fn(q[start : j-2]) {
				return
			}
			i = j
		default:
			i++
		}
	}
}

// skipToken returns the end of the token that starts at q[i] when it is one
// the scanners step over whole, else i: a string literal with its
// continuations, a quoted identifier, a dollar-quoted string, or an
// identifier or keyword. An identifier owns the '$' and digits in it
// (x$a$ is not a dollar quote), and E'...' is an escape string only when
// the E stands alone, as in PostgreSQL's lexer.
func skipToken(q []byte, i int) int {
	switch c := q[i]; {
	case c == '\'':
		return skipString(q, i, false)
	case c == '"':
		return skipQuoted(q, i+1, '"', false)
	case c == '$':
		return skipDollar(q, i)
	case isIdentByte(c) && !(c >= '0' && c <= '9'):
		j := i + 1
		for j < len(q) && (isIdentByte(q[j]) || q[j] == '$') {
			j++
		}
		if j == i+1 && (c|0x20) == 'e' && j < len(q) && q[j] == '\'' {
			return skipString(q, j, true)
		}
		return j
	}
	return i
}

// skipString returns the end of the string literal that starts with the
// quote at q[i], and of the literals that continue it (a quote after white
// space that holds a newline), which are of its kind: escape strings
// (backslash set) or standard ones.
func skipString(q []byte, i int, backslash bool) int {
	for {
		i = skipQuoted(q, i+1, '\'', backslash)
		j, newline := i, false
		for j < len(q) && (q[j] == ' ' || q[j] == '\t' || q[j] == '\n' || q[j] == '\r' || q[j] == '\f') {
			newline = newline || q[j] == '\n' || q[j] == '\r'
			j++
		}
		if !newline || j >= len(q) || q[j] != '\'' {
			return i
		}
		i = j
	}
}

// skipQuoted returns the index after the closing quote of a literal that
// starts at i (just after the opening quote). A doubled quote is an escaped
// quote; with backslash set, a backslash escapes the next byte.
func skipQuoted(q []byte, i int, quote byte, backslash bool) int {
	for i < len(q) {
		switch q[i] {
		case '\\':
			if backslash {
				i += 2
				continue
			}
		case quote:
			if i+1 < len(q) && q[i+1] == quote {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(q)
}

// skipDollar skips a dollar-quoted string starting at q[i] == '$', or just
// the '$' when it does not open one (a parameter like $1).
func skipDollar(q []byte, i int) int {
	j := i + 1
	for j < len(q) && (isIdentByte(q[j]) && !(j == i+1 && q[j] >= '0' && q[j] <= '9')) {
		j++
	}
	if j >= len(q) || q[j] != '$' {
		return i + 1
	}
	tag := q[i : j+1]
	end := bytes.Index(q[j+1:], tag)
	if end < 0 {
		return len(q)
	}
	return j + 1 + end + len(tag)
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// commentTenant returns the tenant named by a sqlcommenter-style comment
// (/* tenant='acme' */, possibly among other key='value' pairs separated by
// commas) anywhere in q outside literals. found is false when no comment
// names a tenant. Values are URL-decoded as sqlcommenter encodes them.
func commentTenant(q []byte) (tenant string, found bool) {
	if bytes.Index(q, []byte("/*")) < 0 {
		return "", false
	}
	forEachComment(q, func(body []byte) bool {
		tenant, found = commentPair(body, "tenant")
		return !found
	})
	return tenant, found
}

// commentPair finds key='value' in a sqlcommenter comment body.
func commentPair(body []byte, key string) (string, bool) {
	for len(body) > 0 {
		body = bytes.TrimLeft(body, " \t\r\n,")
		eq := bytes.IndexByte(body, '=')
		if eq < 0 {
			return "", false
		}
		k := bytes.TrimSpace(body[:eq])
		rest := bytes.TrimLeft(body[eq+1:], " \t")
		var v []byte
		if len(rest) > 0 && rest[0] == '\'' {
			end := bytes.IndexByte(rest[1:], '\'')
			if end < 0 {
				return "", false
			}
			v = rest[1 : 1+end]
			body = rest[2+end:]
		} else {
			end := bytes.IndexAny(rest, ", \t\r\n")
			if end < 0 {
				end = len(rest)
			}
			v = rest[:end]
			body = rest[end:]
		}
		if string(k) == key {
			return urlDecode(v), true
		}
	}
	return "", false
}

// urlDecode decodes %XX escapes; a malformed escape is kept as is.
func urlDecode(v []byte) string {
	if bytes.IndexByte(v, '%') < 0 {
		return string(v)
	}
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			sb.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
			continue
		}
		sb.WriteByte(v[i])
	}
	return sb.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// words is a tokenizer over the start of a statement: identifiers and
// keywords (lower-cased), quoted identifiers, string literals, and single
// punctuation bytes. Comments and white space are skipped.
type words struct {
	q   []byte
	pos int
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokWord
	tokString // 'literal' (value unescaped)
	tokQuotedIdent
	tokPunct
)

type token struct {
	kind tokenKind
	text string // lower-cased for tokWord
	raw  []byte // source bytes of the token
}

func (w *words) skipSpace() {
	for w.pos < len(w.q) {
		c := w.q[w.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			w.pos++
		case c == '-' && w.pos+1 < len(w.q) && w.q[w.pos+1] == '-':
			j := bytes.IndexByte(w.q[w.pos:], '\n')
			if j < 0 {
				w.pos = len(w.q)
			} else {
				w.pos += j + 1
			}
		case c == '/' && w.pos+1 < len(w.q) && w.q[w.pos+1] == '*':
			w.pos = skipBlockComment(w.q, w.pos)
		default:
			return
		}
	}
}

// skipBlockComment returns the end of the comment that starts at i, which
// nests as PostgreSQL's do (len(q) when it never ends).
func skipBlockComment(q []byte, i int) int {
	depth := 0
	for i+1 < len(q) {
		switch {
		case q[i] == '/' && q[i+1] == '*':
			depth++
			i += 2
		case q[i] == '*' && q[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(q)
}

func (w *words) next() token {
	w.skipSpace()
	if w.pos >= len(w.q) {
		return token{kind: tokEOF}
	}
	start := w.pos
	c := w.q[w.pos]
	switch {
	case c == '\'' || ((c == 'e' || c == 'E') && w.pos+1 < len(w.q) && w.q[w.pos+1] == '\''):
		bs := c != '\''
		if bs {
			w.pos++
		}
		end := skipQuoted(w.q, w.pos+1, '\'', bs)
		w.pos = end
		inner := w.q[start:end]
		if bs {
			inner = inner[1:]
		}
		return token{kind: tokString, text: unquote(inner, '\'', bs), raw: w.q[start:end]}
	case c == '"':
		end := skipQuoted(w.q, w.pos+1, '"', false)
		w.pos = end
		return token{kind: tokQuotedIdent, text: unquote(w.q[start:end], '"', false), raw: w.q[start:end]}
	case isIdentByte(c):
		for w.pos < len(w.q) && (isIdentByte(w.q[w.pos]) || w.q[w.pos] == '.' || w.q[w.pos] == '$') {
			w.pos++
		}
		return token{kind: tokWord, text: strings.ToLower(string(w.q[start:w.pos])), raw: w.q[start:w.pos]}
	default:
		w.pos++
		return token{kind: tokPunct, text: string(c), raw: w.q[start:w.pos]}
	}
}

// rest returns the remaining text with surrounding space and a trailing
// semicolon removed.
func (w *words) rest() []byte {
	r := bytes.TrimSpace(w.q[min(w.pos, len(w.q)):])
	return bytes.TrimSpace(bytes.TrimSuffix(r, []byte(";")))
}

// unquote strips the quotes of a literal and undoes doubled quotes (and
// backslash escapes when bs is set, for the common \\ and \' cases).
func unquote(lit []byte, quote byte, bs bool) string {
	if len(lit) >= 2 && lit[0] == quote && lit[len(lit)-1] == quote {
		lit = lit[1 : len(lit)-1]
	} else if len(lit) >= 1 && lit[0] == quote {
		lit = lit[1:]
	}
	var sb strings.Builder
	for i := 0; i < len(lit); i++ {
		if lit[i] == quote && i+1 < len(lit) && lit[i+1] == quote {
			sb.WriteByte(quote)
			i++
			continue
		}
		if bs && lit[i] == '\\' && i+1 < len(lit) {
			sb.WriteByte(lit[i+1])
			i++
			continue
		}
		sb.WriteByte(lit[i])
	}
	return sb.String()
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
