package etcdstore

import (
	"slices"
	"strings"
	"testing"

	"github.com/shardline/shardline"
)

func TestSlotTableRoundTrip(t *testing.T) {
	even := shardline.EvenSlots([]shardline.ShardID{"s1", "s2", "s3"})
	mixed := slices.Clone(even)
	mixed[7], mixed[4095] = "s3", "s1"
	for _, slots := range [][]shardline.ShardID{even, mixed} {
		b, err := encodeSlots(slots)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSlots(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, slots) {
			t.Fatalf("round trip changed the slot table")
		}
	}
	b, _ := encodeSlots(even)
	if len(b) > 200 {
		t.Errorf("even table of 3 shards encodes to %d bytes: %s", len(b), b)
	}
}

func TestDecodeSlotsRejects(t *testing.T) {
	for _, bad := range []string{
		`nope`,
		`{"runs":[]}`,
		`{"runs":[{"shard":"s1","count":4095}]}`,
		`{"runs":[{"shard":"s1","count":4097}]}`,
		`{"runs":[{"shard":"s1","count":4096},{"shard":"s2","count":1}]}`,
		`{"runs":[{"shard":"s1","count":-1},{"shard":"s1","count":4097}]}`,
	} {
		if _, err := decodeSlots([]byte(bad)); err == nil {
			t.Errorf("decodeSlots(%s) succeeded", bad)
		}
	}
	if _, err := encodeSlots(make([]shardline.ShardID, 3)); err == nil {
		t.Error("encodeSlots of 3 slots succeeded")
	}
}

func TestClusterName(t *testing.T) {
	for _, bad := range []string{"", "a/b", "A", strings.Repeat("x", 64)} {
		if _, err := NewStore(nil, bad); err == nil {
			t.Errorf("NewStore(nil, %q) succeeded", bad)
		}
	}
}
