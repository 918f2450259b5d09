package chaos

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestDescribeNamesWhatRefused: the router's errors carry no source
// location and PostgreSQL's always do, so each is named for where it came
// from; row-level security and privileges get their own words.
func TestDescribeNamesWhatRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&pgconn.PgError{Code: "25001", Message: "cannot switch"}, "router 25001 (cannot switch)"},
		{&pgconn.PgError{Code: "42501", Message: `new row violates row-level security policy for table "t"`, File: "rowsecurity.c", Routine: "ExecWithCheckOptions"},
			"row-level security 42501"},
		{&pgconn.PgError{Code: "42501", Message: `permission denied to set role "postgres"`, File: "variable.c", Routine: "check_role"},
			"PostgreSQL permission denied 42501"},
		{&pgconn.PgError{Code: "34000", Message: `cursor "c" does not exist`, File: "portalcmds.c", Routine: "PerformPortalFetch"}, "PostgreSQL 34000"},
		{errors.New("EOF"), "connection: EOF"},
	} {
		if got := describe(tc.err); !strings.HasPrefix(got, tc.want) {
			t.Errorf("describe(%v) = %q, want it to start with %q", tc.err, got, tc.want)
		}
	}
}

// TestScanFindsOtherTenantsSecrets: a secret of any drill tenant but the
// one a step may see is a leak, found in any text the step got back;
// secrets of other runs are not.
func TestScanFindsOtherTenantsSecrets(t *testing.T) {
	d := &isolation{run: "r1", a: "a", v: "v", w: "w"}
	for _, tc := range []struct {
		as, text string
		leaks    int
	}{
		{"a", d.secret("a", 1) + "\n" + d.secret("a", 2), 0},
		{"a", d.secret("v", 1), 1},
		{"a", "ERROR: duplicate key (tenant_id, secret)=(v, " + d.secret("v", 3) + ") " + d.secret("w", 1), 2},
		{"v", d.secret("v", 1) + d.secret("a", 1), 1},
		{"a", "s:r2:v:1", 0},
		{"a", "", 0},
	} {
		o := &outcome{}
		d.scan(o, "step", tc.as, []byte(tc.text))
		if len(o.leaks) != tc.leaks {
			t.Errorf("scan as %s of %q: %v, want %d leaks", tc.as, tc.text, o.leaks, tc.leaks)
		}
	}
}

// TestVerdict: any leak makes an attack LEAKED, whatever else happened;
// without one, an attack that could not run is an error, one whose
// feature is missing is skipped, and a blocked one says what blocked it.
func TestVerdict(t *testing.T) {
	at := attack{name: "x", ok: "rls"}
	for _, tc := range []struct {
		o      outcome
		writes []string
		result string
		detail string
	}{
		{outcome{}, nil, Blocked, "rls"},
		{outcome{errs: []string{"s: router 25001", "s: router 25001"}}, nil, Blocked, "s: router 25001"},
		{outcome{errs: []string{"e"}}, []string{"wrote 1 row"}, Leaked, "wrote 1 row"},
		{outcome{skip: "no TLS", leaks: []string{"read 1"}}, nil, Leaked, "read 1"},
		{outcome{skip: "no TLS"}, nil, Skipped, "no TLS"},
		{outcome{fail: errors.New("down"), skip: "no TLS"}, nil, Failed, "down"},
		{outcome{blockedBy: "closed", errs: []string{"e"}}, nil, Blocked, "closed"},
	} {
		r := verdict(at, &tc.o, tc.writes)
		detail := r.BlockedBy + r.Leak + r.Reason
		if r.Result != tc.result || detail != tc.detail {
			t.Errorf("verdict(%+v, %v) = %s %q, want %s %q", tc.o, tc.writes, r.Result, detail, tc.result, tc.detail)
		}
	}
}
