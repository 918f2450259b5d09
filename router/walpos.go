package router

import "github.com/shardline/shardline"

// WAL page header sizes on 64-bit builds of PostgreSQL: MAXALIGN of
// XLogPageHeaderData and of XLogLongPageHeaderData (xlog_internal.h). The
// first page of every WAL segment carries the long header.
const (
	walShortHeader = 24
	walLongHeader  = 40
)

// walLayout is a server's WAL page size (wal_block_size) and segment size
// (wal_segment_size), in bytes.
type walLayout struct {
	block, segment uint64
}

// insertForm turns a replica's replay position (pg_last_wal_replay_lsn:
// the end of the last record replayed) into the form of the primary's
// insert positions (pg_current_wal_insert_lsn), which samples and tokens
// are. The two differ only at a page boundary: an insert position never
// is one, it points past the page's header, which holds no record. So a
// replica that has replayed up to a boundary has everything before the
// position just past that header. Without this, a replica of an idle
// primary whose last record filled a page (every segment switch: a fresh
// cluster, pg_switch_wal, archive_timeout) never looks caught up until
// the next write. Any other position, and any position with no layout
// known, is returned as is.
func (w walLayout) insertForm(replay shardline.LSN) shardline.LSN {
	pos := uint64(replay)
	if w.block == 0 || w.segment == 0 || pos == 0 {
		return replay
	}
	switch {
	case pos%w.segment == 0:
		return shardline.LSN(pos + walLongHeader)
	case pos%w.block == 0:
		return shardline.LSN(pos + walShortHeader)
	}
	return replay
}
