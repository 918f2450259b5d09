package shardline

import (
	"errors"
	"fmt"
	"testing"
)

func TestEvenSlots(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 16} {
		ids := make([]ShardID, n)
		for i := range ids {
			ids[n-1-i] = ShardID(fmt.Sprintf("s%02d", i)) // reversed on purpose
		}
		slots := EvenSlots(ids)
		counts := map[ShardID]int{}
		for _, s := range slots {
			counts[s]++
		}
		if len(counts) != n {
			t.Fatalf("n=%d: %d shards own slots", n, len(counts))
		}
		lo, hi := SlotCount, 0
		for _, c := range counts {
			lo, hi = min(lo, c), max(hi, c)
		}
		if hi-lo > 1 {
			t.Errorf("n=%d: slot counts range %d..%d", n, lo, hi)
		}
		if slots[0] != "s00" {
			t.Errorf("n=%d: slot 0 owned by %s, want s00 (sorted order)", n, slots[0])
		}
	}
}

func TestLocateOverrideWins(t *testing.T) {
	p := &Placement{
		Slots:     EvenSlots([]ShardID{"s1", "s2"}),
		Shards:    map[ShardID]Shard{"s1": {ID: "s1"}, "s2": {ID: "s2"}},
		Overrides: map[TenantID]ShardID{},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	loc := p.Locate("acme")
	if loc.Pinned || loc.Slot != SlotOf("acme") || loc.Shard != p.Slots[loc.Slot] {
		t.Fatalf("unpinned locate = %+v", loc)
	}
	other := ShardID("s1")
	if loc.Shard == "s1" {
		other = "s2"
	}
	p.Overrides["acme"] = other
	if got := p.Locate("acme"); !got.Pinned || got.Shard != other {
		t.Fatalf("pinned locate = %+v, want shard %s", got, other)
	}
	p.Overrides["ghost"] = "s9"
	if err := p.Validate(); !errors.Is(err, ErrShardNotFound) {
		t.Fatalf("Validate with unknown override shard = %v", err)
	}
}

func TestValidateTenant(t *testing.T) {
	for _, ok := range []string{"acme", "t1", "org-42_eu.west:a@b"} {
		if err := ValidateTenant(ok); err != nil {
			t.Errorf("ValidateTenant(%q) = %v", ok, err)
		}
	}
	long := make([]byte, MaxTenantLen+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "a b", "a'b", "a\"b", "a\\b", "a/b", "x*/", "é", string(long)} {
		if err := ValidateTenant(bad); !errors.Is(err, ErrInvalidTenant) {
			t.Errorf("ValidateTenant(%q) = %v, want ErrInvalidTenant", bad, err)
		}
	}
}

func BenchmarkLocate(b *testing.B) {
	p := &Placement{
		Slots:     EvenSlots([]ShardID{"s1", "s2"}),
		Shards:    map[ShardID]Shard{"s1": {ID: "s1"}, "s2": {ID: "s2"}},
		Overrides: map[TenantID]ShardID{"pinned": "s2"},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = p.Locate("tenant-12345")
	}
}
