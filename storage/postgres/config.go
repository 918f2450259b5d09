package postgres

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
)

// Defaults for LocalConfig.
const (
	DefaultShards   = 2
	DefaultReplicas = 1
	DefaultDatabase = "app"
	DefaultBasePort = 15432

	// NoReplicas asks for shards without replicas. A zero Replicas means
	// DefaultReplicas.
	NoReplicas = -1

	// MaxShards and MaxReplicas bound a local cluster.
	MaxShards   = 64
	MaxReplicas = 8
)

// ownedSettings are the postgresql.conf settings the cluster assigns per
// member; LocalConfig.Conf may not override them.
var ownedSettings = []string{"port", "listen_addresses", "unix_socket_directories", "cluster_name"}

// LocalConfig describes a local cluster: Shards shards, each a primary and
// Replicas streaming replicas, on consecutive ports from BasePort.
type LocalConfig struct {
	// Dir is the cluster directory. PostgreSQL data directories go under
	// Dir/pg/<member>, server logs under Dir/pg/log, and the manifest that
	// a restart reads is Dir/pg/manifest.json. Required.
	Dir string
	// BinDir holds initdb, pg_ctl, postgres and pg_basebackup; "" means
	// FindBinDir.
	BinDir string
	// Shards is the number of shards, 1 to MaxShards; 0 means DefaultShards.
	Shards int
	// Replicas is the number of streaming replicas per shard, 0 to
	// MaxReplicas; 0 means DefaultReplicas and NoReplicas means none.
	Replicas int
	// Database is created on each primary; "" means DefaultDatabase.
	Database string
	// BasePort is the first port; members take BasePort, BasePort+1, ... in
	// the order s1 primary, s1 replicas, s2 primary, ...; 0 means
	// DefaultBasePort.
	BasePort int
	// Conf holds extra postgresql.conf settings, such as fsync=off for
	// tests. They may not set port, listen_addresses,
	// unix_socket_directories or cluster_name.
	Conf map[string]string
	// NoGuard starts the servers without the shardline_guard library, for
	// machines without a C compiler or the server headers: the router then
	// binds tenants with a setting any client can write (docs/isolation.md).
	NoGuard bool
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
}

// Validate fills in defaults and checks the ranges. It is idempotent.
func (c *LocalConfig) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("postgres: local config: Dir is required")
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("postgres: local config: Dir: %w", err)
	}
	c.Dir = abs
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.Shards < 1 || c.Shards > MaxShards {
		return fmt.Errorf("postgres: local config: Shards %d out of range 1..%d", c.Shards, MaxShards)
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Replicas != NoReplicas && (c.Replicas < 0 || c.Replicas > MaxReplicas) {
		return fmt.Errorf("postgres: local config: Replicas %d out of range 0..%d (NoReplicas for none)", c.Replicas, MaxReplicas)
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if !isIdentifier(c.Database) {
		return fmt.Errorf("postgres: local config: Database %q must be a lower-case identifier (a-z, 0-9, _)", c.Database)
	}
	if c.BasePort == 0 {
		c.BasePort = DefaultBasePort
	}
	if last := c.BasePort + c.members() - 1; c.BasePort < 1024 || last > 65535 {
		return fmt.Errorf("postgres: local config: ports %d..%d out of range 1024..65535", c.BasePort, last)
	}
	for k, v := range c.Conf {
		if !isSettingName(k) {
			return fmt.Errorf("postgres: local config: Conf key %q is not a setting name", k)
		}
		for _, owned := range ownedSettings {
			if strings.EqualFold(k, owned) {
				return fmt.Errorf("postgres: local config: Conf may not set %s: the cluster assigns it per member", k)
			}
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("postgres: local config: Conf value for %s holds a line break", k)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// replicas returns the number of replicas per shard after Validate.
func (c *LocalConfig) replicas() int {
	return max(c.Replicas, 0)
}

// members returns the number of PostgreSQL servers after Validate.
func (c *LocalConfig) members() int {
	return c.Shards * (1 + c.replicas())
}

func isIdentifier(s string) bool {
	if s == "" || len(s) > 63 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isSettingName accepts GUC names, including custom ones such as
// "shardline.tenant".
func isSettingName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
