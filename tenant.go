package shardline

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// SlotCount is the number of hash slots. A tenant's slot is
// xxhash64(tenant) mod SlotCount; the slot table maps slots to shards.
const SlotCount = 4096

// MaxTenantLen bounds a tenant id so that it fits in a Postgres identifier
// context (GUC values, log lines) without surprises.
const MaxTenantLen = 128

// TenantID is an opaque tenant identifier chosen by the application.
type TenantID string

// SlotOf returns the slot of a tenant. It is pure and allocation free.
func SlotOf(t TenantID) int {
	return int(xxhash.Sum64String(string(t)) % SlotCount)
}

// TenantRule says what a valid tenant id is, as the hint of
// ValidateTenant's errors.
var TenantRule = fmt.Sprintf("a tenant id is 1 to %d bytes of printable ASCII without spaces, quotes, "+
	"'\\', '/', '*' or ';': letters, digits and '-', '_', '.', ':', '@' are fine", MaxTenantLen)

// ValidateTenant reports whether s can be used as a tenant id: 1 to
// MaxTenantLen bytes of printable ASCII without quotes, backslashes or
// spaces, so it can travel in a comment, a SET value and a URL path unescaped.
// The error is an *Error matching ErrInvalidTenant: its Message names the id
// and what is wrong with it, its Hint is TenantRule.
func ValidateTenant(s string) error {
	invalid := func(format string, args ...any) error {
		return &Error{Kind: ErrInvalidTenant, Message: fmt.Sprintf("invalid tenant id %s: ", quoteID(s)) + fmt.Sprintf(format, args...), Hint: TenantRule}
	}
	if s == "" {
		return invalid("it is empty")
	}
	if len(s) > MaxTenantLen {
		return invalid("it is %d bytes long, at most %d", len(s), MaxTenantLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '\'' || c == '"' || c == '\\' || c == '/' || c == '*' || c == ';' {
			return invalid("byte %q at offset %d is not allowed", c, i)
		}
	}
	return nil
}
