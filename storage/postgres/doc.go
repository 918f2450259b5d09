// Package postgres provisions and drives local PostgreSQL servers: the
// shards that `shardline up` and the integration tests run on one machine
// (a primary and streaming replicas per shard, made with initdb and
// pg_basebackup), and schema changes applied over pgx.
//
// PostgreSQL refuses to run as root. When the process runs as root every
// PostgreSQL binary runs as the `postgres` OS user, and the directories it
// writes to are handed to that user.
package postgres
