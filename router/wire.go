package router

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// maxMessageLen bounds one protocol message (PostgreSQL's own limit for most
// messages is 1 GB; a router has no reason to buffer more than this).
const maxMessageLen = 256 << 20

// msgReader reads typed protocol messages (a type byte, a big-endian int32
// length that counts itself, the body) from a buffered stream. The body
// returned by next is valid only until the following call; callers that keep
// it must copy it.
type msgReader struct {
	r   *bufio.Reader
	big []byte // reused for bodies larger than the bufio buffer
}

func newMsgReader(rd io.Reader, size int) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(rd, size)}
}

// buffered reports how many bytes can be read without blocking.
func (m *msgReader) buffered() int { return m.r.Buffered() }

// peekType returns the type of the next message without consuming it.
func (m *msgReader) peekType() (byte, error) {
	b, err := m.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// next returns the next message. A length outside 4..maxMessageLen is a
// protocol error.
func (m *msgReader) next() (byte, []byte, error) {
	hdr, err := m.r.Peek(5)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	typ := hdr[0]
	n := int(binary.BigEndian.Uint32(hdr[1:5])) - 4
	if n < 0 || n > maxMessageLen {
		return 0, nil, fmt.Errorf("%w: message %q with length %d", errProtocol, typ, n+4)
	}
	if _, err := m.r.Discard(5); err != nil {
		return 0, nil, err
	}
	if n <= m.r.Size() {
		body, err := m.r.Peek(n)
		if err != nil {
			return 0, nil, unexpectedEOF(err)
		}
		_, _ = m.r.Discard(n) // cannot fail: Peek returned n bytes
		return typ, body, nil
	}
	if cap(m.big) < n {
		m.big = make([]byte, n)
	}
	body := m.big[:n]
	if _, err := io.ReadFull(m.r, body); err != nil {
		return 0, nil, unexpectedEOF(err)
	}
	return typ, body, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeMsg appends one message to w without allocating: the header is
// built in w's own free buffer space.
func writeMsg(w *bufio.Writer, typ byte, body []byte) {
	if w.Available() < 5 {
		_ = w.Flush() // an error stays in w and is returned by the next Flush
	}
	hdr := w.AvailableBuffer()
	hdr = append(hdr, typ)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(body)+4))
	if len(body) <= w.Available()-5 {
		hdr = append(hdr, body...)
		w.Write(hdr)
		return
	}
	w.Write(hdr)
	w.Write(body)
}

// msgBuilder builds one message body; it is reused and never shared.
type msgBuilder struct{ b []byte }

func (m *msgBuilder) reset() *msgBuilder { m.b = m.b[:0]; return m }
func (m *msgBuilder) str(s string) *msgBuilder {
	m.b = append(m.b, s...)
	m.b = append(m.b, 0)
	return m
}
func (m *msgBuilder) byte1(c byte) *msgBuilder { m.b = append(m.b, c); return m }
func (m *msgBuilder) int16(v int) *msgBuilder {
	m.b = binary.BigEndian.AppendUint16(m.b, uint16(v))
	return m
}
func (m *msgBuilder) int32(v int32) *msgBuilder {
	m.b = binary.BigEndian.AppendUint32(m.b, uint32(v))
	return m
}
func (m *msgBuilder) bytes(p []byte) *msgBuilder { m.b = append(m.b, p...); return m }
func (m *msgBuilder) text(s string) *msgBuilder  { m.b = append(m.b, s...); return m }

// Protocol messages the router writes itself.

func appendMsg(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+4))
	return append(dst, body...)
}

// queryMsg returns a complete simple Query message for sql.
func queryMsg(sql string) []byte {
	b := make([]byte, 0, len(sql)+6)
	b = append(b, 'Q')
	b = binary.BigEndian.AppendUint32(b, uint32(len(sql)+5))
	b = append(b, sql...)
	return append(b, 0)
}

// commandComplete returns a CommandComplete message with tag.
func commandComplete(tag string) []byte {
	return appendMsg(nil, 'C', append([]byte(tag), 0))
}

// readyForQuery returns a ReadyForQuery message with status.
func readyForQuery(status byte) []byte { return []byte{'Z', 0, 0, 0, 5, status} }

// Messages that never change (read only: they are written as they are).
var (
	authOK        = []byte{'R', 0, 0, 0, 8, 0, 0, 0, 0} // AuthenticationOk
	readyIdle     = readyForQuery('I')
	sslRefused    = []byte{'N'} // the answer to SSLRequest and GSSENCRequest
	parseComplete = []byte{'1', 0, 0, 0, 4}
	bindComplete  = []byte{'2', 0, 0, 0, 4}
	closeComplete = []byte{'3', 0, 0, 0, 4}
	noData        = []byte{'n', 0, 0, 0, 4}
)

// appendParameterStatus appends a ParameterStatus message to b.
func appendParameterStatus(b []byte, name, value string) []byte {
	b = append(b, 'S')
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(name)+1+len(value)+1))
	b = append(append(b, name...), 0)
	return append(append(b, value...), 0)
}

// parameterStatus returns a ParameterStatus message.
func parameterStatus(name, value string) []byte { return appendParameterStatus(nil, name, value) }

// writeParameterStatus writes a ParameterStatus message to w, built in w's
// buffer when it fits (parameterStatus would allocate it).
func writeParameterStatus(w *bufio.Writer, name, value string) {
	if w.Available() < 1+4+len(name)+1+len(value)+1 {
		_ = w.Flush() // an error stays in w and is returned by the next Flush
	}
	w.Write(appendParameterStatus(w.AvailableBuffer(), name, value))
}

// textRowDescription describes one text column named name.
func textRowDescription(name string) []byte {
	var m msgBuilder
	m.int16(1).str(name).int32(0).int16(0).int32(25).int16(-1).int32(-1).int16(0)
	return appendMsg(nil, 'T', m.b)
}

// textDataRow is one row with one text value.
func textDataRow(v string) []byte {
	var m msgBuilder
	m.int16(1).int32(int32(len(v))).bytes([]byte(v))
	return appendMsg(nil, 'D', m.b)
}

// cstring reads a NUL-terminated string at the start of b and returns it and
// the rest. ok is false when b has no NUL.
func cstring(b []byte) (s string, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// cstr is cstring for a string: the parts are substrings of s.
func cstr(s string) (v, rest string, ok bool) {
	i := strings.IndexByte(s, 0)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// cstringBytes is cstring without the string allocation.
func cstringBytes(b []byte) (s []byte, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}
