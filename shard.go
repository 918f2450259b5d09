package shardline

import (
	"fmt"
	"slices"
)

// ShardID names a shard, for example "s1".
type ShardID string

// ValidateShardID reports whether s is a usable shard id: 1 to 63 bytes of
// lower-case letters, digits, '-' and '_'. The error is an *Error matching
// ErrInvalidShard.
func ValidateShardID(s string) error {
	ok := s != "" && len(s) <= 63
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if !ok {
		return &Error{Kind: ErrInvalidShard, Message: fmt.Sprintf("invalid shard id %s: a shard id is 1 to 63 bytes of a-z, 0-9, '-' and '_'", quoteID(s)),
			Hint: "'shardline status' lists the shards"}
	}
	return nil
}

// Member is one PostgreSQL server of a shard.
type Member struct {
	// Name identifies the member within its shard, for example "s1-p".
	Name string `json:"name"`
	// DSN is a libpq/pgx connection string that reaches the member.
	DSN string `json:"dsn"`
}

// Shard is a primary and its streaming replicas.
type Shard struct {
	ID       ShardID  `json:"id"`
	Primary  Member   `json:"primary"`
	Replicas []Member `json:"replicas"`
	// Epoch increases whenever the primary changes.
	Epoch int64 `json:"epoch"`
	// ServerUser is the role the router's server connections log in as on
	// every member of the shard, in place of the user of the members'
	// DSNs, which administrative work keeps using. "" keeps the DSNs'
	// user. The router refuses a role that is superuser or BYPASSRLS, as
	// row-level security would not bind it.
	ServerUser string `json:"server_user,omitempty"`
}

// Clone returns a deep copy.
func (s Shard) Clone() Shard {
	s.Replicas = slices.Clone(s.Replicas)
	return s
}

// ReplicaHealth is what a router measures of one replica.
type ReplicaHealth struct {
	Member  string  `json:"member"`
	Shard   ShardID `json:"shard"`
	Healthy bool    `json:"healthy"`
	// LagBytes is the primary's WAL position minus the replica's replay
	// position at the last sample.
	LagBytes int64 `json:"lag_bytes"`
	// LagMillis is how old the oldest primary WAL position the replica had
	// not replayed was at the last sample: 0 when caught up.
	LagMillis int64 `json:"lag_ms"`
	// ReplayLSN is the replica's replay position at the last sample.
	ReplayLSN LSN `json:"replay_lsn"`
}
