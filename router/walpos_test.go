package router

import (
	"testing"

	"github.com/shardline/shardline"
)

func TestRecordEnd(t *testing.T) {
	const seg = 16 << 20
	w := walLayout{block: 8192, segment: seg}
	for _, c := range []struct {
		name       string
		insert     shardline.LSN
		want       shardline.LSN
		layoutless bool
	}{
		{name: "past a segment's long header", insert: 0x3000028, want: 0x3000000},
		{name: "past a page's short header", insert: 0x3002018, want: 0x3002000},
		{name: "record data after a long header", insert: 0x3000030, want: 0x3000030},
		{name: "24 bytes into a segment's first page is data", insert: 0x3000018, want: 0x3000018},
		{name: "a record's continuation after a short header", insert: 0x3002028, want: 0x3002028},
		{name: "mid-page", insert: 0x3000060, want: 0x3000060},
		{name: "exactly at a boundary", insert: 0x3002000, want: 0x3002000},
		{name: "second segment of a later timeline's file", insert: 5<<32 | 0x1000028, want: 5<<32 | 0x1000000},
		{name: "unknown layout leaves it", insert: 0x3000028, want: 0x3000028, layoutless: true},
	} {
		l := w
		if c.layoutless {
			l = walLayout{}
		}
		if got := l.recordEnd(c.insert); got != c.want {
			t.Errorf("%s: recordEnd(%s) = %s, want %s", c.name, c.insert, got, c.want)
		}
	}
	big := walLayout{block: 32768, segment: 1 << 30}
	if got := big.recordEnd(0x40008018); got != 0x40008000 {
		t.Errorf("32 KiB pages: recordEnd(0/40008018) = %s, want 0/40008000", got)
	}
	if got := big.recordEnd(0x40002018); got != 0x40002018 {
		t.Errorf("32 KiB pages: 0/40002018 is mid-page, got %s", got)
	}
}

// TestReplayedToken: a token taken right after a commit that ended at a
// page boundary points past the next page's header; a replica at the
// boundary has replayed that commit. One byte of record beyond the header
// it has not.
func TestReplayedToken(t *testing.T) {
	st := &replicaState{replay: 0x3002000, wal: walLayout{block: 8192, segment: 16 << 20}}
	for _, c := range []struct {
		tok  shardline.LSN
		want bool
	}{
		{0x3001ff8, true},
		{0x3002000, true},
		{0x3002018, true},  // past the short header only
		{0x3002020, false}, // a record's continuation follows the header
		{0x3004018, false}, // past the header of a later page
	} {
		if got := st.replayed(c.tok); got != c.want {
			t.Errorf("replay %s, token %s: replayed = %v, want %v", st.replay, c.tok, got, c.want)
		}
	}
	unknown := &replicaState{replay: 0x3002000}
	if unknown.replayed(0x3002018) {
		t.Error("with no layout sampled, a token past the boundary must count as not replayed")
	}
}
