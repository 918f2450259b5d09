package shardmgr

import "errors"

// ErrEmptySchema is returned by ApplySchema for a script with no SQL.
var ErrEmptySchema = errors.New("shardmgr: schema SQL is empty")

// ErrNoSchemaCheck is returned by CheckSchema when the manager's
// SchemaApplier cannot list tenant tables (it is no TenantSchema).
var ErrNoSchemaCheck = errors.New("shardmgr: the schema applier cannot check tenant tables")
