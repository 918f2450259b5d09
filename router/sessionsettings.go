package router

import (
	"time"

	"github.com/shardline/shardline"
)

// sessionSettings is what a session keeps between transactions: the
// tenant, the server settings it replays on every server connection it
// takes, and its replica-read policy. The statements that change it are in
// settings.go.
type sessionSettings struct {
	tenant   shardline.TenantID // from SET shardline.tenant or the startup option; see resolveTenant
	params   []setting          // session settings in the order first set
	paramSQL string             // params as one statement list, replayed on other backends

	// Replica reads (see readpolicy.go).
	target          target
	maxLag          lagBound
	maxWait         time.Duration
	token           shardline.Token // read-your-writes: reads need a replica at or past it
	defaultReadOnly bool            // default_transaction_read_only
}

// setting is one session-level setting and the statement that sets it.
type setting struct {
	name string
	sql  string
}

// settingOp is a session setting change waiting for its transaction to end.
type settingOp struct {
	kind stmtKind // stmtSessionSet, stmtSessionReset or stmtResetAll
	name string
	sql  string
}

// resolveTenant returns the tenant statement q runs for. This is the one
// place the sources are ranked: a tenant comment in the statement
// (/* tenant='acme' */) wins over the session's tenant, which the last of
// SET shardline.tenant and the startup option set. "" is no tenant. An
// invalid id in the comment is an error (the others are refused when set).
func (s *session) resolveTenant(q []byte) (shardline.TenantID, error) {
	if t, ok := commentTenant(q); ok {
		if err := shardline.ValidateTenant(t); err != nil {
			return "", errInvalidTenant("in the statement's tenant comment", err)
		}
		if err := s.checkTenant(shardline.TenantID(t), "the statement's tenant comment"); err != nil {
			return "", err
		}
		return shardline.TenantID(t), nil
	}
	return s.tenant, nil
}
