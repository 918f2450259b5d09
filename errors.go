package shardline

import (
	"errors"
	"fmt"
)

// Errors shared by the router, the manager and the API. Each edge (the
// router's ErrorResponse, the API's HTTP status) translates them in one place.
// Test for them with errors.Is; the errors people read are *Error values
// that match one of them.
var (
	ErrInvalidTenant  = errors.New("shardline: invalid tenant id")
	ErrInvalidShard   = errors.New("shardline: invalid shard id")
	ErrShardNotFound  = errors.New("shardline: shard not found")
	ErrTenantNotFound = errors.New("shardline: tenant not found")
	ErrConflict       = errors.New("shardline: placement changed concurrently")
	ErrNoPlacement    = errors.New("shardline: cluster has no placement yet")
	// ErrTenantHasData means a change would route a tenant away from the
	// shard that holds its rows.
	ErrTenantHasData = errors.New("shardline: tenant has rows on its shard")
)

// Error is an error for the people who read it (a CLI user, an API client,
// an application's log through the router): Message is one sentence that
// names the problem, with no package prefix or step names; Hint names the
// fix, or is "". Kind is the sentinel it matches with errors.Is.
//
// Wrapping an *Error with context for developers is fine; an edge that
// shows errors to people finds it with errors.As (or AsError) and shows
// Message and Hint, not the chain.
type Error struct {
	Kind    error
	Message string
	Hint    string
}

// Error returns Message, followed by " (hint: Hint)" when there is a hint.
func (e *Error) Error() string {
	if e.Hint == "" {
		return e.Message
	}
	return e.Message + " (hint: " + e.Hint + ")"
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// AsError returns the first *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// ShardNotFound is the error for a shard id the cluster does not have; it
// matches ErrShardNotFound.
func ShardNotFound(id ShardID) error {
	return &Error{Kind: ErrShardNotFound, Message: fmt.Sprintf("no shard %q in this cluster", id),
		Hint: "'shardline status' lists the shards"}
}

// TenantNotRegistered is the error for an operation that needs a tenant's
// record when it has none; it matches ErrTenantNotFound.
func TenantNotRegistered(t TenantID) error {
	return &Error{Kind: ErrTenantNotFound, Message: fmt.Sprintf("tenant %s is not registered", quoteID(string(t))),
		Hint: "'shardline tenant list' lists the registered tenants; an unregistered tenant lives where its slot says"}
}

// quoteID quotes an id for a message, cut short when it is long.
func quoteID(s string) string {
	const max = 32
	if len(s) > max {
		q := fmt.Sprintf("%q", s[:max])
		return q[:len(q)-1] + `..."`
	}
	return fmt.Sprintf("%q", s)
}
