package router

import "github.com/shardline/shardline"

// WAL page header sizes on 64-bit builds of PostgreSQL: MAXALIGN of
// XLogPageHeaderData and of XLogLongPageHeaderData (xlog_internal.h). The
// first page of every WAL segment carries the long header.
const (
	walShortHeader = 24
	walLongHeader  = 40
)

// walLayout is what recordEnd needs to know of a server's WAL: its page
// size (wal_block_size) and segment size (wal_segment_size), in bytes.
type walLayout struct {
	block, segment uint64
}

// recordEnd turns an insert position (pg_current_wal_insert_lsn) into the
// end of the last record written before it, the form replicas report
// (pg_last_wal_replay_lsn). The two differ only when the last record ended
// exactly at a page boundary: the insert position then points past the
// next page's header, which holds no record, while a replica that has
// replayed everything reports the boundary itself. Without this, a replica
// of an idle primary whose last record filled a page (every segment
// switch: a fresh cluster, pg_switch_wal, archive_timeout) never looks
// caught up until the next write. Any other position is returned as is.
func (w walLayout) recordEnd(insert shardline.LSN) shardline.LSN {
	if w.block == 0 || w.segment == 0 {
		return insert
	}
	pos := uint64(insert)
	switch {
	case pos%w.segment == walLongHeader:
		return shardline.LSN(pos - walLongHeader)
	case pos%w.segment != walShortHeader && pos%w.block == walShortHeader:
		return shardline.LSN(pos - walShortHeader)
	}
	return insert
}
