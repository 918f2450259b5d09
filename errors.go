package shardline

import "errors"

// Errors shared by the router, the manager and the API. Each edge (the
// router's ErrorResponse, the API's HTTP status) translates them in one place.
var (
	ErrInvalidTenant  = errors.New("shardline: invalid tenant id")
	ErrInvalidShard   = errors.New("shardline: invalid shard id")
	ErrShardNotFound  = errors.New("shardline: shard not found")
	ErrTenantNotFound = errors.New("shardline: tenant not found")
	ErrConflict       = errors.New("shardline: placement changed concurrently")
	ErrNoPlacement    = errors.New("shardline: cluster has no placement yet")
)
