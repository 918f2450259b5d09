package shardmgr

import (
	"context"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/storage/etcdstore"
)

// TenantView is where a tenant lives and whether it is registered. Every
// valid tenant id has a view: an unregistered tenant lives where its slot
// says.
type TenantView struct {
	Tenant shardline.TenantID
	Shard  shardline.ShardID
	Slot   int
	// Pinned is true when an override, not the slot, decides the shard.
	Pinned bool
	// Registered is true when the tenant has a record in etcd.
	Registered bool
	// Revision is the etcd revision the view was read at.
	Revision int64
}

func view(tp etcdstore.TenantPlacement) TenantView {
	return TenantView{Tenant: tp.Tenant, Shard: tp.Shard, Slot: tp.Slot, Pinned: tp.Pinned, Registered: tp.Registered, Revision: tp.Revision}
}

// CreateTenant registers tenant, pinned to shard unless shard is "" (then
// its slot decides). Creating an existing tenant again is a no-op, except
// that a different shard pins it there.
//
// Errors wrap shardline.ErrInvalidTenant, ErrInvalidShard, ErrShardNotFound,
// ErrNoPlacement or ErrConflict.
func (m *Manager) CreateTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantView, error) {
	rec, err := m.store.CreateTenant(ctx, tenant, shard)
	if err != nil {
		return TenantView{}, err
	}
	m.logger.Info("tenant created", "tenant", tenant, "shard", rec.Shard, "revision", rec.ModRevision)
	return m.locate(ctx, tenant)
}

// ShowTenant returns where tenant lives. An unregistered tenant is not an
// error: it has a slot and a shard. Errors wrap shardline.ErrInvalidTenant or
// ErrNoPlacement.
func (m *Manager) ShowTenant(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	return m.locate(ctx, tenant)
}

// ListTenants returns the registered tenants, sorted by id.
func (m *Manager) ListTenants(ctx context.Context) ([]TenantView, error) {
	all, err := m.store.LocateRegistered(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]TenantView, len(all))
	for i, tp := range all {
		views[i] = view(tp)
	}
	return views, nil
}

// PinTenant overrides tenant's slot with shard, registering the tenant if
// needed. An empty shard pins the tenant where it lives now, so that later
// slot moves leave it in place.
//
// Errors are those of CreateTenant.
func (m *Manager) PinTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantView, error) {
	if shard == "" {
		here, err := m.ShowTenant(ctx, tenant)
		if err != nil {
			return TenantView{}, err
		}
		shard = here.Shard
	}
	rec, err := m.store.PinTenant(ctx, tenant, shard)
	if err != nil {
		return TenantView{}, err
	}
	m.logger.Info("tenant pinned", "tenant", tenant, "shard", shard, "revision", rec.ModRevision)
	return m.locate(ctx, tenant)
}

// UnpinTenant removes a registered tenant's override, so its slot decides
// again. Errors wrap shardline.ErrInvalidTenant, ErrTenantNotFound,
// ErrNoPlacement or ErrConflict.
func (m *Manager) UnpinTenant(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	rec, err := m.store.UnpinTenant(ctx, tenant)
	if err != nil {
		return TenantView{}, err
	}
	m.logger.Info("tenant unpinned", "tenant", tenant, "revision", rec.ModRevision)
	return m.locate(ctx, tenant)
}

func (m *Manager) locate(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	tp, err := m.store.Locate(ctx, tenant)
	if err != nil {
		return TenantView{}, err
	}
	return view(tp), nil
}
