package router

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shardline/shardline/internal/netloop"
)

const (
	protocolV3     = 196608
	codeSSLRequest = 80877103
	codeGSSRequest = 80877104
	codeCancel     = 80877102
	maxStartupLen  = 10000
	startupTimeout = 30 * time.Second
	// clientReadBuffer is small: an idle session holds it while it waits;
	// larger messages are read past it (msgReader.big).
	clientReadBuffer = 4 << 10
	// clientWriteBuffer is taken from a pool while a session has something
	// to send and given back when it goes idle.
	clientWriteBuffer = 16 << 10
)

// startup is what a client asked for in its StartupMessage.
type startup struct {
	user     string
	database string
	minor    uint16
	// params are the run-time parameters to set for the session, in the
	// order given (options' -c settings after the plain ones); up to four
	// take no allocation of their own (paramBuf).
	params   [][2]string
	paramBuf [4][2]string
	// unsupported are protocol options (_pq_.*) the router does not know.
	unsupported []string
	// tls: the session runs over TLS.
	tls bool
}

// readStartup reads the packets before the StartupMessage (an SSLRequest
// starts TLS when the router has it and is declined otherwise, as is
// GSSENCRequest; a CancelRequest, over TLS or not, is handled and ends the
// connection) and returns the parsed StartupMessage; nil with a nil error
// means the connection carried a cancel request. With TLSRequired an
// unencrypted StartupMessage is refused (28000).
func (r *Router) readStartup(t *netloop.Task, c *netloop.Conn, br *bufio.Reader) (*startup, error) {
	secured, sslAnswered, gssAnswered := false, false, false
	for first := true; ; first = false {
		if first && r.tls != nil {
			if b, err := br.Peek(1); err == nil && b[0] == tlsRecordHandshake {
				if err := r.tls.direct(t, c, br); err != nil {
					return nil, err
				}
				secured, sslAnswered = true, true
				continue
			}
		}
		hdr, err := readStartupBytes(br, 8) // in br's buffer: an array here would escape to the heap
		if err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint32(hdr[0:4]))
		code := binary.BigEndian.Uint32(hdr[4:8])
		if n < 8 || n > maxStartupLen {
			return nil, &Error{Code: codeProtocolViolation, Fatal: true, Message: fmt.Sprintf("invalid startup packet length %d", n)}
		}
		body, err := readStartupBytes(br, n-8)
		if err != nil {
			return nil, err
		}
		switch code {
		case codeSSLRequest, codeGSSRequest:
			// Each is answered once, as PostgreSQL does (a second one is
			// a protocol violation below).
			if code == codeSSLRequest && !sslAnswered {
				sslAnswered = true
				if r.tls != nil {
					if err := r.tls.negotiate(t, c, br); err != nil {
						return nil, err
					}
					secured = true
					continue
				}
			} else if code != codeGSSRequest || gssAnswered || secured {
				return nil, &Error{Code: codeProtocolViolation, Fatal: true, Message: "repeated or late encryption request in startup"}
			} else {
				gssAnswered = true
			}
			if _, err := c.Write(sslRefused); err != nil {
				return nil, err
			}
			continue
		case codeCancel:
			if len(body) >= 8 {
				pid, secret := binary.BigEndian.Uint32(body[0:4]), binary.BigEndian.Uint32(body[4:8])
				t.Block(func() { r.cancelRequest(pid, secret) }) // dials the server
			}
			return nil, nil
		}
		if code>>16 != 3 {
			return nil, &Error{Code: codeFeatureNotSupported, Fatal: true,
				Message: fmt.Sprintf("unsupported frontend protocol %d.%d", code>>16, code&0xffff),
				Hint:    "Use a client speaking protocol 3 (any PostgreSQL driver of the last 20 years)."}
		}
		st, err := parseStartup(string(body)) // one copy; the parameters are substrings of it
		if err != nil {
			return nil, err
		}
		st.minor = uint16(code & 0xffff)
		st.tls = secured
		if !secured {
			if err := r.tls.refusePlaintext(c, st); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
}

// readStartupBytes reads the next n bytes of a startup packet: in br's buffer when
// they fit (valid until br's next read), else in a new slice.
func readStartupBytes(br *bufio.Reader, n int) ([]byte, error) {
	if n > br.Size() {
		body := make([]byte, n)
		_, err := io.ReadFull(br, body)
		return body, err
	}
	body, err := br.Peek(n)
	if err != nil {
		return nil, err
	}
	_, _ = br.Discard(n) // cannot fail: n bytes are buffered
	return body, nil
}

// parseStartup parses the key/value pairs of a StartupMessage body.
func parseStartup(body string) (*startup, error) {
	st := &startup{}
	st.params = st.paramBuf[:0]
	var options string
	for len(body) > 0 && body[0] != 0 {
		k, rest, ok := cstr(body)
		if !ok {
			return nil, &Error{Code: codeProtocolViolation, Fatal: true, Message: "invalid startup packet: unterminated parameter name"}
		}
		v, rest, ok := cstr(rest)
		if !ok {
			return nil, &Error{Code: codeProtocolViolation, Fatal: true, Message: "invalid startup packet: unterminated value of " + k}
		}
		body = rest
		switch {
		case k == "user":
			st.user = v
		case k == "database":
			st.database = v
		case k == "options":
			options = v
		case k == "replication":
			if v != "false" && v != "0" && v != "off" && v != "no" {
				return nil, &Error{Code: codeFeatureNotSupported, Fatal: true, Message: "replication connections are not supported through the router",
					Hint: "Connect to the shard's primary directly for replication ('shardline status' lists it)."}
			}
		case strings.HasPrefix(k, "_pq_."):
			st.unsupported = append(st.unsupported, k)
		case !validSettingName(k):
			return nil, &Error{Code: codeInvalidParameter, Fatal: true, Message: fmt.Sprintf("invalid startup parameter name %q", k)}
		default:
			st.params = append(st.params, [2]string{k, v})
		}
	}
	var err error
	if st.params, err = appendOptions(st.params, options); err != nil {
		return nil, err
	}
	if st.user == "" {
		return nil, &Error{Code: codeInvalidAuthorization, Fatal: true, Message: "no PostgreSQL user name specified in startup packet"}
	}
	if st.database == "" {
		st.database = st.user
	}
	return st, nil
}

// parseOptions parses libpq's options string: settings as "-c name=value",
// "-cname=value" or "--name=value", separated by white space; a backslash
// escapes the next character (so values can hold spaces).
func parseOptions(s string) ([][2]string, error) { return appendOptions(nil, s) }

// appendOptions is parseOptions appending to dst. Names and values without
// a backslash are substrings of s.
func appendOptions(dst [][2]string, s string) ([][2]string, error) {
	var buf [8]string
	args := splitOptions(buf[:0], s)
	for i := 0; i < len(args); i++ {
		a := args[i]
		var kv string
		switch {
		case a == "-c":
			if i+1 >= len(args) {
				return nil, optionsErr("-c without a setting")
			}
			i++
			kv = args[i]
		case strings.HasPrefix(a, "-c"):
			kv = a[2:]
		case strings.HasPrefix(a, "--"):
			kv = a[2:]
		default:
			return nil, optionsErr(fmt.Sprintf("unsupported option %q", a))
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !validSettingName(k) {
			return nil, optionsErr(fmt.Sprintf("setting %q is not name=value with a name of letters, digits, '_', '-' and '.'", kv))
		}
		dst = append(dst, [2]string{strings.ReplaceAll(strings.ToLower(k), "-", "_"), v})
	}
	return dst, nil
}

// splitOptions appends the words of libpq's options string to args: white
// space separates them, and a backslash escapes the next character (a
// last backslash is itself). A word without a backslash is a substring of
// s.
func splitOptions(args []string, s string) []string {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for i := 0; i < len(s); {
		if isSpace(s[i]) {
			i++
			continue
		}
		start, escaped := i, false
		for i < len(s) && !isSpace(s[i]) {
			if s[i] == '\\' && i+1 < len(s) {
				escaped = true
				i += 2
				continue
			}
			i++
		}
		word := s[start:i]
		if escaped {
			var b strings.Builder
			for j := 0; j < len(word); j++ {
				if word[j] == '\\' && j+1 < len(word) {
					j++
				}
				b.WriteByte(word[j])
			}
			word = b.String()
		}
		args = append(args, word)
	}
	return args
}

func optionsErr(msg string) error {
	return &Error{Code: codeInvalidParameter, Fatal: true, Message: "invalid options in startup packet: " + msg,
		Hint: "Use options='-c name=value', for example options='-c shardline.tenant=acme'."}
}

// accept runs, on the event loop, for each new client connection: its
// task reads the startup request and authenticates the client (both
// within startupTimeout), then serves the session until Terminate.
func (r *Router) accept(c *netloop.Conn) {
	i, l := r.loops.pick()
	l.Go(func(t *netloop.Task) {
		c.Attach(t)
		defer c.Close()
		br := bufio.NewReaderSize(c, clientReadBuffer)
		timer := time.AfterFunc(startupTimeout, c.Shutdown)
		defer timer.Stop()
		st, err := r.readStartup(t, c, br)
		if err != nil || st == nil {
			var re *Error
			if errors.As(err, &re) {
				_, _ = c.Write(errorResponse(re))
				r.metrics.errors.WithLabelValues(re.Code).Inc()
			}
			return
		}
		s := newSession(r, t, i, c, br, st)
		if !r.register(s) {
			return
		}
		defer func() {
			r.unregister(s)
			s.forgetStmts()
			s.releaseOut()
		}()
		err = s.authenticate()
		timer.Stop()
		if err == nil {
			err = s.greet()
		}
		if err != nil {
			if !isClientGone(err) {
				s.fail(err)
			}
			return
		}
		r.metrics.sessions.Inc()
		r.metrics.sessionsOpen.Inc()
		defer r.metrics.sessions.Dec()
		s.run()
	})
}

// validSettingName reports whether a run-time parameter name is made of
// letters, digits, '_', '-' and '.' (what PostgreSQL's GUC names use).
func validSettingName(k string) bool {
	if k == "" || len(k) > 63 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
