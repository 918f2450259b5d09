// Package api serves Shardline's HTTP/JSON admin API and holds the Go
// client the CLI uses.
//
// Routes:
//
//	GET    /healthz                   200 "ok" once ready, else 503
//	GET    /v1/status                 Status
//	POST   /v1/tenants                CreateTenantRequest -> 201 TenantView
//	GET    /v1/tenants                TenantList
//	GET    /v1/tenants/{tenant}       TenantView (any valid id has one)
//	PUT    /v1/tenants/{tenant}/pin   optional PinRequest -> TenantView (409 if the tenant has rows on its shard and the pin would route it elsewhere)
//	DELETE /v1/tenants/{tenant}/pin   TenantView
//	POST   /v1/schema                 SchemaRequest -> SchemaResponse (200, or 422 if a shard failed)
//	GET    /v1/schema/check           -> SchemaCheckResponse (200, or 422 if a shard or table has a problem)
//	POST   /v1/users                  CreateUserRequest -> 201 UserView (409 if the user exists)
//	GET    /v1/users                  UserList (never a verifier)
//	GET    /v1/users/{name}           UserView
//	PUT    /v1/users/{name}/verifier  SetVerifierRequest -> UserView (a new password)
//	DELETE /v1/users/{name}           UserView of the removed user
//
// Errors are JSON ErrorBody documents. Bad input is a 4xx, never a 5xx.
//
// Authentication: with Config.Token set, every request (/healthz too) that
// sends "Authorization: Bearer TOKEN" must send that token; with
// Config.RequireToken, every request must send it. Otherwise the answer is
// 401 with a WWW-Authenticate: Bearer challenge.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/shardline/shardline/shardmgr"
)

// Body size limits.
const (
	maxBody       = 1 << 20  // 1 MiB for small JSON requests
	maxSchemaBody = 10 << 20 // 10 MiB for schema scripts
)

// Config configures the admin API server.
type Config struct {
	// Manager answers the requests. Required.
	Manager *shardmgr.Manager
	// Logger receives request errors and, at debug level, every request;
	// nil discards.
	Logger *slog.Logger
	// Ready tells /healthz whether the process is ready to serve; nil
	// means always ready.
	Ready func() bool
	// RouterDSN, when set, is reported in Status: the DSN of the router
	// this process serves, for tools (drills) that connect through it.
	RouterDSN string
	// Token is the admin token. When set, a request that sends a bearer
	// token must send this one; see RequireToken. It is compared in
	// constant time and never logged.
	Token string
	// RequireToken refuses requests without the token (401). `shardline
	// up` sets it when the admin API listens on an address that is not
	// loopback. It needs Token.
	RequireToken bool
	// Users keeps the router's users for /v1/users; nil answers those
	// routes with 501.
	Users UserStore
}

// Validate reports a missing Manager, and RequireToken without a Token.
func (c *Config) Validate() error {
	if c.Manager == nil {
		return errors.New("api: config needs a Manager")
	}
	if c.RequireToken && c.Token == "" {
		return errors.New("api: RequireToken needs a Token")
	}
	return nil
}

// Server is the admin API's http.Handler. It is safe for concurrent use.
type Server struct {
	mgr    *shardmgr.Manager
	logger *slog.Logger
	ready  func() bool
	router string // RouterDSN
	auth   bearer
	users  UserStore
	mux    *http.ServeMux
}

var _ http.Handler = (*Server)(nil)

// NewServer returns the handler for cfg's manager.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{mgr: cfg.Manager, logger: cfg.Logger, ready: cfg.Ready, router: cfg.RouterDSN,
		auth: newBearer(cfg.Token, cfg.RequireToken), users: cfg.Users, mux: http.NewServeMux()}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.logger = s.logger.With("component", "api")
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /v1/status", s.handle(s.status))
	s.mux.HandleFunc("POST /v1/tenants", s.handle(s.createTenant))
	s.mux.HandleFunc("GET /v1/tenants", s.handle(s.listTenants))
	s.mux.HandleFunc("GET /v1/tenants/{tenant}", s.handle(s.showTenant))
	s.mux.HandleFunc("PUT /v1/tenants/{tenant}/pin", s.handle(s.pinTenant))
	s.mux.HandleFunc("DELETE /v1/tenants/{tenant}/pin", s.handle(s.unpinTenant))
	s.mux.HandleFunc("POST /v1/schema", s.handle(s.applySchema))
	s.mux.HandleFunc("GET /v1/schema/check", s.handle(s.checkSchema))
	s.mux.HandleFunc("POST /v1/shards/{shard}/query", s.handle(s.query))
	s.mux.HandleFunc("POST /v1/users", s.handle(s.createUser))
	s.mux.HandleFunc("GET /v1/users", s.handle(s.listUsers))
	s.mux.HandleFunc("GET /v1/users/{name}", s.handle(s.showUser))
	s.mux.HandleFunc("PUT /v1/users/{name}/verifier", s.handle(s.setVerifier))
	s.mux.HandleFunc("DELETE /v1/users/{name}", s.handle(s.removeUser))
	return s, nil
}

// ServeHTTP refuses requests without the admin token (when it is
// required) or with a wrong one with a 401, before any route; recovers
// panics into a 500; and answers unknown routes and methods with JSON
// errors.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !sw.wrote {
				writeJSON(sw, http.StatusInternalServerError, ErrorBody{Error: "internal error"})
			}
		}
		s.logger.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "took", time.Since(start))
	}()
	if msg, challenge := s.auth.check(r); msg != "" {
		sw.Header().Set("WWW-Authenticate", challenge)
		writeJSON(sw, http.StatusUnauthorized, ErrorBody{Error: msg})
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// The mux answers 404 or 405 (with Allow) in plain text; keep its
		// status and headers, and say it in JSON.
		s.mux.ServeHTTP(&routeErrorWriter{statusWriter: sw, method: r.Method, path: r.URL.Path}, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// handle adapts a handler that returns its response or an error.
func (s *Server) handle(h func(w http.ResponseWriter, r *http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(w, r)
		if err != nil {
			status = statusOf(err)
			if status >= 500 {
				s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
			}
			body = ErrorBody{Error: messageOf(err)}
		}
		writeJSON(w, status, body)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decode reads one JSON object of at most limit bytes into v, rejecting
// unknown fields and trailing data. An empty body is an error unless
// allowEmpty, in which case v is left as it is.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any, allowEmpty bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		return decodeError(err, limit)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := decodeError(err, limit); statusOf(e) == http.StatusRequestEntityTooLarge {
				return e
			}
		}
		return badRequest("request body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of the body")
	case errors.As(err, &syntax):
		return badRequest("malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return badRequest("field %q must be a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return badRequest("request body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return badRequest("invalid JSON body: %v", err)
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}

// statusWriter remembers whether and what status was written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routeErrorWriter turns the mux's plain-text 404 and 405 into JSON.
type routeErrorWriter struct {
	*statusWriter
	method, path string
	done         bool
}

func (w *routeErrorWriter) WriteHeader(status int) {
	if w.done {
		return
	}
	w.done = true
	msg := fmt.Sprintf("no route %s %s", w.method, w.path)
	if status == http.StatusMethodNotAllowed {
		msg = fmt.Sprintf("method %s not allowed on %s (allowed: %s)", w.method, w.path, w.Header().Get("Allow"))
	}
	w.Header().Del("Content-Length")
	writeJSON(w.statusWriter, status, ErrorBody{Error: msg})
}

func (w *routeErrorWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return len(b), nil // the mux's text body is replaced by the JSON above
}
