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

// ValidateTenant reports whether s can be used as a tenant id: 1 to
// MaxTenantLen bytes of printable ASCII without quotes, backslashes or
// spaces, so it can travel in a comment, a SET value and a URL path unescaped.
// The error wraps ErrInvalidTenant.
func ValidateTenant(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTenant)
	}
	if len(s) > MaxTenantLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidTenant, len(s), MaxTenantLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '\'' || c == '"' || c == '\\' || c == '/' || c == '*' || c == ';' {
			return fmt.Errorf("%w: byte %q at %d is not allowed (use letters, digits, '-', '_', '.', ':', '@')", ErrInvalidTenant, c, i)
		}
	}
	return nil
}
