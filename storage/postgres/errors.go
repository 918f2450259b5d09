package postgres

import "errors"

// Errors returned by this package. Callers test them with errors.Is; the
// wrapping error names the binary, member, port or directory concerned.
var (
	// ErrNoBinaries means no directory holds the PostgreSQL server binaries.
	ErrNoBinaries = errors.New("postgres: PostgreSQL server binaries not found")
	// ErrPortInUse means a port a member needs is taken on 127.0.0.1.
	ErrPortInUse = errors.New("postgres: port in use")
	// ErrDirNotTraversable means the postgres OS user cannot reach the
	// cluster directory through one of its parents.
	ErrDirNotTraversable = errors.New("postgres: directory not traversable by the postgres OS user")
	// ErrDirLocked means another live process already runs the cluster in
	// that directory.
	ErrDirLocked = errors.New("postgres: cluster directory in use by another process")
	// ErrUnknownMember means no member has the given name.
	ErrUnknownMember = errors.New("postgres: unknown member")
	// ErrStopped means the Local was stopped.
	ErrStopped = errors.New("postgres: cluster stopped")
)
