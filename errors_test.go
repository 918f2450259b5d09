package shardline

import (
	"errors"
	"strings"
	"testing"
)

// TestUserFacingErrors checks the errors people read: one sentence that
// names the problem and a hint, without the package prefix, and still
// matching their sentinel.
func TestUserFacingErrors(t *testing.T) {
	for _, tc := range []struct {
		err      error
		kind     error
		want     string // the whole Error()
		wantHint bool
	}{
		{ValidateTenant("x y"), ErrInvalidTenant, `invalid tenant id "x y": byte ' ' at offset 1 is not allowed`, true},
		{ValidateTenant(""), ErrInvalidTenant, `invalid tenant id "": it is empty`, true},
		{ValidateTenant(strings.Repeat("a", 200)), ErrInvalidTenant, `invalid tenant id "` + strings.Repeat("a", 32) + `...": it is 200 bytes long, at most 128`, true},
		{ValidateShardID("S9"), ErrInvalidShard, `invalid shard id "S9": a shard id is 1 to 63 bytes of a-z, 0-9, '-' and '_'`, true},
		{ShardNotFound("s9"), ErrShardNotFound, `no shard "s9" in this cluster`, true},
		{TenantNotRegistered("nobody"), ErrTenantNotFound, `tenant "nobody" is not registered`, true},
	} {
		if !errors.Is(tc.err, tc.kind) {
			t.Errorf("%v does not match %v", tc.err, tc.kind)
		}
		var e *Error
		if !errors.As(tc.err, &e) {
			t.Fatalf("%v is not an *Error", tc.err)
		}
		if e.Message != tc.want || (e.Hint != "") != tc.wantHint {
			t.Errorf("message %q hint %q, want %q (hint: %v)", e.Message, e.Hint, tc.want, tc.wantHint)
		}
		msg := tc.err.Error()
		if strings.Contains(msg, "shardline: ") || strings.Count(msg, "\n") > 0 || !strings.HasPrefix(msg, tc.want) {
			t.Errorf("Error() = %q", msg)
		}
		if tc.wantHint && !strings.HasSuffix(msg, " (hint: "+e.Hint+")") {
			t.Errorf("Error() = %q lacks the hint", msg)
		}
	}
	if err := ValidateTenant("acme-1.eu:x@y_z"); err != nil {
		t.Errorf("valid tenant: %v", err)
	}
}
