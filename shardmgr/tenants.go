package shardmgr

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardline/shardline"
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

func view(p *shardline.Placement, t shardline.TenantID, registered bool) TenantView {
	loc := p.Locate(t)
	return TenantView{Tenant: t, Shard: loc.Shard, Slot: loc.Slot, Pinned: loc.Pinned, Registered: registered, Revision: p.Revision}
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
		return TenantView{}, fmt.Errorf("shardmgr: %w", err)
	}
	m.logger.Info("tenant created", "tenant", tenant, "shard", rec.Shard, "revision", rec.ModRevision)
	return m.locate(ctx, tenant, true)
}

// ShowTenant returns where tenant lives. An unregistered tenant is not an
// error: it has a slot and a shard. Errors wrap shardline.ErrInvalidTenant or
// ErrNoPlacement.
func (m *Manager) ShowTenant(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	_, err := m.store.GetTenant(ctx, tenant)
	registered := err == nil
	if err != nil && !errors.Is(err, shardline.ErrTenantNotFound) {
		return TenantView{}, fmt.Errorf("shardmgr: %w", err)
	}
	return m.locate(ctx, tenant, registered)
}

// ListTenants returns the registered tenants, sorted by id.
func (m *Manager) ListTenants(ctx context.Context) ([]TenantView, error) {
	recs, err := m.store.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("shardmgr: %w", err)
	}
	p, err := m.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("shardmgr: list tenants: %w", err)
	}
	views := make([]TenantView, len(recs))
	for i, rec := range recs {
		views[i] = view(p, rec.Tenant, true)
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
		return TenantView{}, fmt.Errorf("shardmgr: %w", err)
	}
	m.logger.Info("tenant pinned", "tenant", tenant, "shard", shard, "revision", rec.ModRevision)
	return m.locate(ctx, tenant, true)
}

// UnpinTenant removes a registered tenant's override, so its slot decides
// again. Errors wrap shardline.ErrInvalidTenant, ErrTenantNotFound,
// ErrNoPlacement or ErrConflict.
func (m *Manager) UnpinTenant(ctx context.Context, tenant shardline.TenantID) (TenantView, error) {
	rec, err := m.store.UnpinTenant(ctx, tenant)
	if err != nil {
		return TenantView{}, fmt.Errorf("shardmgr: %w", err)
	}
	m.logger.Info("tenant unpinned", "tenant", tenant, "revision", rec.ModRevision)
	return m.locate(ctx, tenant, true)
}

func (m *Manager) locate(ctx context.Context, tenant shardline.TenantID, registered bool) (TenantView, error) {
	if err := shardline.ValidateTenant(string(tenant)); err != nil {
		return TenantView{}, fmt.Errorf("shardmgr: %w", err)
	}
	p, err := m.store.Load(ctx)
	if err != nil {
		return TenantView{}, fmt.Errorf("shardmgr: locate tenant %s: %w", tenant, err)
	}
	return view(p, tenant, registered), nil
}
