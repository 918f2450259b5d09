package router

import (
	"testing"

	"github.com/shardline/shardline"
)

func TestInsertForm(t *testing.T) {
	const seg = 16 << 20
	w := walLayout{block: 8192, segment: seg}
	for _, c := range []struct {
		name       string
		replay     shardline.LSN
		want       shardline.LSN
		layoutless bool
	}{
		{name: "a segment's start: past its long header", replay: 0x3000000, want: 0x3000028},
		{name: "a page's start: past its short header", replay: 0x3002000, want: 0x3002018},
		{name: "record data after a long header", replay: 0x3000030, want: 0x3000030},
		{name: "24 bytes into a segment's first page is data", replay: 0x3000018, want: 0x3000018},
		{name: "a record's continuation after a short header", replay: 0x3002028, want: 0x3002028},
		{name: "mid-page", replay: 0x3000060, want: 0x3000060},
		{name: "a later segment of a higher log file", replay: 5<<32 | 0x1000000, want: 5<<32 | 0x1000028},
		{name: "no replay position", replay: 0, want: 0},
		{name: "unknown layout leaves it", replay: 0x3000000, want: 0x3000000, layoutless: true},
	} {
		l := w
		if c.layoutless {
			l = walLayout{}
		}
		if got := l.insertForm(c.replay); got != c.want {
			t.Errorf("%s: insertForm(%s) = %s, want %s", c.name, c.replay, got, c.want)
		}
	}
	big := walLayout{block: 32768, segment: 1 << 30}
	if got := big.insertForm(0x40008000); got != 0x40008018 {
		t.Errorf("32 KiB pages: insertForm(0/40008000) = %s, want 0/40008018", got)
	}
	if got := big.insertForm(0x40002000); got != 0x40002000 {
		t.Errorf("32 KiB pages: 0/40002000 is mid-page, got %s", got)
	}
}

// TestReplayedToken: a token taken right after a commit that ended at a
// page boundary points past the next page's header; a replica at the
// boundary has replayed that commit. One byte of record beyond the header
// it has not.
func TestReplayedToken(t *testing.T) {
	replay := shardline.LSN(0x3002000)
	st := &replicaState{replay: replay, reached: walLayout{block: 8192, segment: 16 << 20}.insertForm(replay)}
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
	unknown := &replicaState{replay: replay, reached: walLayout{}.insertForm(replay)}
	if unknown.replayed(0x3002018) {
		t.Error("with no layout sampled, a token past the boundary must count as not replayed")
	}
}
