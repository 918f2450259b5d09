package router

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/shardline/shardline"
)

var (
	errProtocol   = errors.New("router: protocol violation")
	errPoolClosed = errors.New("router: pool closed")
	errLagBound   = errors.New("want a duration such as 500ms or 2s, or a size such as 16MB")
)

// SQLSTATEs the router itself reports, by PostgreSQL's names for them.
// Each kind of problem has its own.
const (
	codeProtocolViolation      = "08P01"
	codeConnectionFailure      = "08006"
	codeFeatureNotSupported    = "0A000"
	codeInvalidParameter       = "22023"
	codeActiveTransaction      = "25001"
	codeInFailedTransaction    = "25P02"
	codeInvalidStatementName   = "26000"
	codeInvalidAuthorization   = "28000"
	codeInvalidCursorName      = "34000"
	codeInvalidCatalog         = "3D000"
	codeInsufficientPrivilege  = "42501"
	codeDuplicatePreparedStmt  = "42P05"
	codeUndefinedFunction      = "42883"
	codeUndefinedObject        = "42704"
	codeNoTenant               = "55000"
	codeCantChangeRuntimeParam = "55P02"
	codeTooManyConnections     = "53300"
	codeCannotConnectNow       = "57P03"
	codeAdminShutdown          = "57P01"
	codeInternal               = "XX000"
)

// Error is an error the router reports to a client as an ErrorResponse.
type Error struct {
	Code    string // SQLSTATE
	Message string
	Hint    string
	Fatal   bool // the session ends after it
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%s): %v", e.Message, e.Code, e.Err)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// SQLState returns the SQLSTATE.
func (e *Error) SQLState() string { return e.Code }

// errorResponse encodes e. This is the one place router errors become
// protocol messages.
func errorResponse(e *Error) []byte {
	sev := "ERROR"
	if e.Fatal {
		sev = "FATAL"
	}
	msg := &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                e.Code,
		Message:             e.Message,
		Hint:                e.Hint,
	}
	b, err := msg.Encode(nil)
	if err != nil { // only for absurd sizes; fall back to a fixed message
		b, _ = (&pgproto3.ErrorResponse{Severity: sev, Code: codeInternal, Message: "router: error too large to encode"}).Encode(nil)
	}
	return b
}

// asRouterError turns any error into an *Error for the client.
func asRouterError(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	return &Error{Code: codeInternal, Message: "router: " + err.Error(), Err: err}
}

// Errors made in more than one place are built here.

// errInFailedTransaction answers a statement sent in a transaction that
// failed, until the client ends it.
func errInFailedTransaction() *Error {
	return &Error{Code: codeInFailedTransaction,
		Message: "current transaction is aborted, commands ignored until end of transaction block",
		Hint:    "Send ROLLBACK."}
}

// errInvalidTenant reports an invalid tenant id from where (a statement
// comment, SET shardline.tenant, the startup option). err is
// shardline.ValidateTenant's, whose message names the id and what is
// wrong with it, and whose hint gives the rule.
func errInvalidTenant(where string, err error) *Error {
	e := &Error{Code: codeInvalidParameter, Message: err.Error(), Err: err}
	if se := shardline.AsError(err); se != nil {
		e.Message, e.Hint = se.Message+" ("+where+")", se.Hint
	}
	return e
}

// errNoStatement reports a prepared statement the client does not have.
func errNoStatement(name string) *Error {
	if name == "" {
		return &Error{Code: codeInvalidStatementName, Message: "unnamed prepared statement does not exist",
			Hint: "Send Parse before Bind (a simple Query destroys the unnamed statement)."}
	}
	return &Error{Code: codeInvalidStatementName, Message: "prepared statement \"" + name + "\" does not exist"}
}

// errBadMessage reports a client message the router cannot read.
func errBadMessage(what string) *Error {
	return &Error{Code: codeProtocolViolation, Message: "invalid " + what + " message"}
}

const tenantHint = "Set a tenant in one of three ways: a comment /* tenant='acme' */ in the statement, " +
	"SET shardline.tenant = 'acme' for the session, or the startup option options='-c shardline.tenant=acme'."

// errClientTerminated ends a session whose client sent Terminate at a point
// where the router had to stop at once (during COPY).
var errClientTerminated = errors.New("router: client terminated")
