package bench

import (
	"slices"
	"testing"
)

func TestAllTargets(t *testing.T) {
	want := []string{"direct", "direct-2shards", "pgbouncer", "pgbouncer-2shards", "router", "router-2shards", "router-2shards-1server"}
	if got := DefaultTargets(); !slices.Equal(got, want) {
		t.Errorf("DefaultTargets = %q, want %q", got, want)
	}
	want = append(want, "pgbouncer-tls", "router-tls") // opt-in
	if got := AllTargets(); !slices.Equal(got, want) {
		t.Errorf("AllTargets = %q, want %q", got, want)
	}
	for _, tb := range targetBuilders {
		if tb.build == nil {
			t.Errorf("%s: no builder", tb.name)
		}
	}
}

// TestTargetsOfExternal checks which targets an external cluster can
// have, by what it was given.
func TestTargetsOfExternal(t *testing.T) {
	tests := []struct {
		ext  ExternalCluster
		want []string
	}{
		{ExternalCluster{Tenant: "t1"}, []string{"direct", "pgbouncer", "router"}},
		{ExternalCluster{Tenant: "t1", Tenant2: "t2"}, []string{"direct", "pgbouncer", "router", "router-2shards"}},
		{ExternalCluster{Tenant: "t1", Tenant2: "t2", DirectDSN2: "x"}, []string{"direct", "direct-2shards", "pgbouncer", "pgbouncer-2shards", "router", "router-2shards"}},
	}
	for _, tt := range tests {
		var got []string
		for _, tb := range targetBuilders {
			if tb.unavailable(&tt.ext) == "" {
				got = append(got, tb.name)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("external %+v: targets %q, want %q", tt.ext, got, tt.want)
		}
	}
}
