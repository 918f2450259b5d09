package shardmgr

import "errors"

// ErrEmptySchema is returned by ApplySchema for a script with no SQL.
var ErrEmptySchema = errors.New("shardmgr: schema SQL is empty")
