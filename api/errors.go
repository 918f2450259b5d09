package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/shardmgr"
)

// errorStatuses maps domain errors to HTTP statuses: the one place the API
// translates them. The first match wins; anything else is a 500.
var errorStatuses = []struct {
	err    error
	status int
}{
	{shardline.ErrInvalidTenant, http.StatusBadRequest},
	{shardline.ErrInvalidShard, http.StatusBadRequest},
	{shardmgr.ErrEmptySchema, http.StatusBadRequest},
	{shardline.ErrShardNotFound, http.StatusNotFound},
	{shardline.ErrTenantNotFound, http.StatusNotFound},
	{shardline.ErrConflict, http.StatusConflict},
	{shardline.ErrNoPlacement, http.StatusServiceUnavailable},
	{context.Canceled, http.StatusServiceUnavailable},
	{context.DeadlineExceeded, http.StatusGatewayTimeout},
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

// ErrUnreachable is wrapped by Client errors when no connection to the
// admin API could be made.
var ErrUnreachable = errors.New("admin API unreachable")
