package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/shardmgr"
)

// errorStatuses maps domain errors to HTTP statuses and messages: the one
// place the API translates them. The first match wins; anything else is a
// 500. The message of an error response is the *shardline.Error in the
// chain when there is one (a sentence and a hint, without the chain's step
// names), else msg, else the error's text.
var errorStatuses = []struct {
	err    error
	status int
	msg    string
}{
	{shardline.ErrInvalidTenant, http.StatusBadRequest, ""},
	{shardline.ErrInvalidShard, http.StatusBadRequest, ""},
	{shardline.ErrInvalidUser, http.StatusBadRequest, ""},
	{shardline.ErrUserNotFound, http.StatusNotFound, ""},
	{shardline.ErrUserExists, http.StatusConflict, ""},
	{shardmgr.ErrEmptySchema, http.StatusBadRequest, "the schema script is empty (hint: send the SQL to run on every shard)"},
	{shardmgr.ErrNoSchemaCheck, http.StatusNotImplemented, "this manager cannot check tenant tables (hint: run it with the PostgreSQL schema admin, as 'shardline up' does)"},
	{shardmgr.ErrEmptyQuery, http.StatusBadRequest, "the query is empty (hint: send the SQL to run on the shard)"},
	{shardmgr.ErrNoQuery, http.StatusNotImplemented, "this manager cannot run queries (hint: run it with the PostgreSQL schema admin, as 'shardline up' does)"},
	{shardmgr.ErrQueryFailed, http.StatusUnprocessableEntity, ""},
	{shardline.ErrShardNotFound, http.StatusNotFound, ""},
	{shardline.ErrTenantNotFound, http.StatusNotFound, ""},
	{shardline.ErrTenantHasData, http.StatusConflict, ""},
	{shardline.ErrConflict, http.StatusConflict, "the placement kept changing while the request ran (hint: try again)"},
	{shardline.ErrNoPlacement, http.StatusServiceUnavailable, "the cluster has no placement yet (hint: it is still starting; try again once 'shardline up' says ready)"},
	{context.Canceled, http.StatusServiceUnavailable, "the request was cancelled (hint: the server may be stopping; try again)"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "the request timed out (hint: check that etcd and the shards are up, then try again)"},
}

// statusOf returns the HTTP status for err.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	for _, e := range errorStatuses {
		if errors.Is(err, e.err) {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// messageOf returns the message of the error response for err.
func messageOf(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		return he.msg
	}
	if de := shardline.AsError(err); de != nil {
		return de.Error()
	}
	for _, e := range errorStatuses {
		if errors.Is(err, e.err) && e.msg != "" {
			return e.msg
		}
	}
	return err.Error()
}

// httpError is a request the server rejects before it reaches the manager:
// malformed JSON, unknown fields, a body too large.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// Error is an error response of the admin API, as the Client returns it.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's explanation.
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Unauthorized reports a 401: the server wants the admin token, or another
// one.
func (e *Error) Unauthorized() bool { return e.Status == http.StatusUnauthorized }

// ErrUnreachable is wrapped by Client errors when no connection to the
// admin API could be made.
var ErrUnreachable = errors.New("admin API unreachable")
