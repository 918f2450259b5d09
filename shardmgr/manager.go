// Package shardmgr is Shardline's control plane: it reads and changes the
// placement (shards, slots, tenant overrides) through the etcd store and
// applies schema changes to every shard. For now it is a thin layer over
// etcdstore; leader election, rebalancing, moves and failover come later.
package shardmgr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/postgres"
)

// RouterInfo reports what the router serves. Status uses it to show how far
// the router's map lags behind etcd.
type RouterInfo interface {
	// MapRevision is the etcd revision of the placement the router routes
	// with, or 0 before it has one.
	MapRevision() int64
	// ReplicaHealth is the router's last sample of each replica, by member
	// name.
	ReplicaHealth() map[string]shardline.ReplicaHealth
}

// Config configures a Manager.
type Config struct {
	// Store holds the placement. Required.
	Store *etcdstore.Store
	// Schema runs schema changes on shard primaries. Required.
	Schema SchemaApplier
	// Data finds a tenant's rows on a shard primary, so that no change of
	// placement routes a tenant away from its rows. Required.
	Data TenantData
	// Router, when set, reports the router's map revision in Status.
	Router RouterInfo
	// TenantColumn is the column that makes a table a tenant table
	// (row-level security, schema checks); "" for
	// postgres.DefaultTenantColumn.
	TenantColumn string
	// Logger receives admin actions at info level; nil discards.
	Logger *slog.Logger
}

// Validate reports a missing required field.
func (c *Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("shardmgr: config needs a Store"))
	}
	if c.Schema == nil {
		errs = append(errs, errors.New("shardmgr: config needs a SchemaApplier"))
	}
	if c.Data == nil {
		errs = append(errs, errors.New("shardmgr: config needs a TenantData"))
	}
	return errors.Join(errs...)
}

// Manager answers the admin API. Its methods are safe for concurrent use;
// every change is one conditioned etcd transaction made by the store.
type Manager struct {
	store  *etcdstore.Store
	schema SchemaApplier
	data   TenantData
	router RouterInfo
	logger *slog.Logger

	tenantColumn string
}

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		store:  cfg.Store,
		schema: cfg.Schema,
		data:   cfg.Data,
		router: cfg.Router,
		logger: logger.With("component", "shardmgr", "cluster", cfg.Store.Cluster()),

		tenantColumn: cmp.Or(cfg.TenantColumn, postgres.DefaultTenantColumn),
	}, nil
}

// Status is the cluster at one etcd revision.
type Status struct {
	Cluster string
	// EtcdRevision is the revision the placement was read at.
	EtcdRevision int64
	// MapRevision is the revision of the router's map; 0 when unknown.
	MapRevision int64
	// Shards are sorted by id.
	Shards []ShardStatus
}

// ShardStatus is one shard, its members and what it owns.
type ShardStatus struct {
	Shard         shardline.Shard
	Slots         int
	PinnedTenants int
	// Replicas holds the router's health sample of each replica, in the
	// order of Shard.Replicas; nil without a router.
	Replicas []shardline.ReplicaHealth
}

// Status reads the placement. Errors wrap shardline.ErrNoPlacement before
// the cluster is bootstrapped.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	p, err := m.store.Load(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	st := Status{Cluster: m.store.Cluster(), EtcdRevision: p.Revision}
	var health map[string]shardline.ReplicaHealth
	if m.router != nil {
		st.MapRevision = m.router.MapRevision()
		health = m.router.ReplicaHealth()
	}
	slots := p.SlotCounts()
	pinned := make(map[shardline.ShardID]int)
	for _, s := range p.Overrides {
		pinned[s]++
	}
	for _, id := range p.ShardIDs() {
		ss := ShardStatus{
			Shard:         p.Shards[id].Clone(),
			Slots:         slots[id],
			PinnedTenants: pinned[id],
		}
		if health != nil {
			for _, r := range ss.Shard.Replicas {
				h, ok := health[r.Name]
				if !ok {
					h = shardline.ReplicaHealth{Member: r.Name, Shard: id, LagMillis: -1} // not sampled yet
				}
				ss.Replicas = append(ss.Replicas, h)
			}
		}
		st.Shards = append(st.Shards, ss)
	}
	return st, nil
}
