package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/shardline/shardline"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TenantPlacement is where one tenant lives at one etcd revision.
type TenantPlacement struct {
	shardline.Location
	// Registered is true when the tenant has a record.
	Registered bool
	// Revision is the etcd revision it was read at.
	Revision int64
}

// Locate returns where tenant lives, reading only the slot table and the
// tenant's record in one consistent read. An unregistered tenant is not an
// error: its slot decides. Errors wrap shardline.ErrInvalidTenant or
// ErrNoPlacement.
func (s *Store) Locate(ctx context.Context, tenant shardline.TenantID) (TenantPlacement, error) {
	if err := shardline.ValidateTenant(string(tenant)); err != nil {
		return TenantPlacement{}, fmt.Errorf("locate: %w", err)
	}
	slots, recs, rev, err := s.slotsAnd(ctx, clientv3.OpGet(s.keys.tenant(tenant)))
	if err != nil {
		return TenantPlacement{}, fmt.Errorf("locate tenant %s: %w", tenant, err)
	}
	rec := TenantRecord{Tenant: tenant}
	if len(recs) == 1 {
		rec = recs[0]
	}
	return place(slots, rec, len(recs) == 1, rev), nil
}

// LocateRegistered returns where every registered tenant lives, sorted by
// tenant id, from one consistent read. Errors wrap ErrNoPlacement when the
// cluster is not bootstrapped.
func (s *Store) LocateRegistered(ctx context.Context) ([]TenantPlacement, error) {
	slots, recs, rev, err := s.slotsAnd(ctx, clientv3.OpGet(s.keys.tenantPrefix(), clientv3.WithPrefix()))
	if err != nil {
		return nil, fmt.Errorf("locate tenants: %w", err)
	}
	out := make([]TenantPlacement, len(recs))
	for i, rec := range recs {
		out[i] = place(slots, rec, true, rev)
	}
	slices.SortFunc(out, func(a, b TenantPlacement) int { return strings.Compare(string(a.Tenant), string(b.Tenant)) })
	return out, nil
}

func place(slots []shardline.ShardID, rec TenantRecord, registered bool, rev int64) TenantPlacement {
	slot := shardline.SlotOf(rec.Tenant)
	loc := shardline.Location{Tenant: rec.Tenant, Shard: slots[slot], Slot: slot}
	if rec.Shard != "" {
		loc.Shard, loc.Pinned = rec.Shard, true
	}
	return TenantPlacement{Location: loc, Registered: registered, Revision: rev}
}

// slotsAnd reads the slot table and the tenant records tenants gets, at one
// revision.
func (s *Store) slotsAnd(ctx context.Context, tenants clientv3.Op) ([]shardline.ShardID, []TenantRecord, int64, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.keys.slots()), tenants).Commit()
	if err != nil {
		return nil, nil, 0, err
	}
	rev := resp.Header.Revision
	slotKVs := resp.Responses[0].GetResponseRange().Kvs
	if len(slotKVs) == 0 {
		return nil, nil, rev, shardline.ErrNoPlacement
	}
	slots, err := decodeSlots(slotKVs[0].Value)
	if err != nil {
		return nil, nil, rev, err
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	recs := make([]TenantRecord, len(kvs))
	for i, kv := range kvs {
		if recs[i], err = s.decodeTenant(kv); err != nil {
			return nil, nil, rev, err
		}
	}
	return slots, recs, rev, nil
}
