package shardline

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of user records (the router's client credentials).
var (
	ErrInvalidUser  = errors.New("shardline: invalid user")
	ErrUserNotFound = errors.New("shardline: user not found")
	ErrUserExists   = errors.New("shardline: user exists")
)

// MaxUserLen bounds a user name: PostgreSQL's identifier limit (NAMEDATALEN-1).
const MaxUserLen = 63

// UserKind says what a user may do through the router.
type UserKind string

const (
	// UserApp is an application user. With tenants it acts only as them;
	// without, it names its tenant per session or statement.
	UserApp UserKind = "app"
	// UserAdmin is an operator's user: it may name any tenant, and is
	// never bound to one.
	UserAdmin UserKind = "admin"
)

// User is a client credential of the router. Verifier is a SCRAM-SHA-256
// verifier in PostgreSQL's format (SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>);
// no password is ever kept. Tenants, for an app user, are the only tenants
// its sessions may act as (empty: not bound).
type User struct {
	Name     string     `json:"name"`
	Kind     UserKind   `json:"kind"`
	Tenants  []TenantID `json:"tenants,omitempty"`
	Verifier string     `json:"verifier"`
	Created  time.Time  `json:"created"`
	// ModRevision is the etcd revision that last changed the record (not
	// stored in the value).
	ModRevision int64 `json:"-"`
}

// UserRule says what a valid user name is, as the hint of
// ValidateUserName's errors.
var UserRule = fmt.Sprintf("a user name is 1 to %d bytes of a-z, A-Z, 0-9, '_', '-' and '.', starting with a letter or '_'", MaxUserLen)

// ValidateUserName reports whether s can name a user. The error is an
// *Error matching ErrInvalidUser.
func ValidateUserName(s string) error {
	invalid := func(why string) error {
		return &Error{Kind: ErrInvalidUser, Message: fmt.Sprintf("invalid user name %s: %s", quoteID(s), why), Hint: UserRule}
	}
	if s == "" {
		return invalid("it is empty")
	}
	if len(s) > MaxUserLen {
		return invalid(fmt.Sprintf("it is %d bytes long, at most %d", len(s), MaxUserLen))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if i == 0 && !letter {
			return invalid("it must start with a letter or '_'")
		}
		if !letter && !(c >= '0' && c <= '9') && c != '-' && c != '.' {
			return invalid(fmt.Sprintf("byte %q at offset %d is not allowed", c, i))
		}
	}
	return nil
}

// Validate checks the record's name, kind and tenants (not the verifier's
// format, which the auth package knows). An admin has no tenants.
func (u User) Validate() error {
	if err := ValidateUserName(u.Name); err != nil {
		return err
	}
	switch u.Kind {
	case UserApp, UserAdmin:
	default:
		return &Error{Kind: ErrInvalidUser, Message: fmt.Sprintf("user %s has kind %s", quoteID(u.Name), quoteID(string(u.Kind))),
			Hint: "a user is of kind \"app\" or \"admin\""}
	}
	if u.Kind == UserAdmin && len(u.Tenants) > 0 {
		return &Error{Kind: ErrInvalidUser, Message: fmt.Sprintf("admin user %s cannot be bound to tenants", quoteID(u.Name)),
			Hint: "an admin user may name any tenant; bind an app user instead"}
	}
	for i, t := range u.Tenants {
		if err := ValidateTenant(string(t)); err != nil {
			return err
		}
		if slices.Contains(u.Tenants[:i], t) {
			return &Error{Kind: ErrInvalidUser, Message: fmt.Sprintf("user %s names tenant %s twice", quoteID(u.Name), quoteID(string(t)))}
		}
	}
	if u.Verifier == "" {
		return &Error{Kind: ErrInvalidUser, Message: fmt.Sprintf("user %s has no password verifier", quoteID(u.Name)),
			Hint: "give a password ('shardline user add' makes the verifier)"}
	}
	return nil
}

// UserNotFound is the error for a user name with no record; it matches
// ErrUserNotFound.
func UserNotFound(name string) error {
	return &Error{Kind: ErrUserNotFound, Message: fmt.Sprintf("no user %s", quoteID(name)),
		Hint: "'shardline user list' lists the users"}
}

// UserExists is the error for adding a user that has a record; it matches
// ErrUserExists.
func UserExists(name string) error {
	return &Error{Kind: ErrUserExists, Message: fmt.Sprintf("user %s exists", quoteID(name)),
		Hint: "'shardline user passwd' changes its password; 'shardline user remove' removes it"}
}
