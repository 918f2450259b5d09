package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shardline/shardline"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TenantRecord is a registered tenant. A tenant needs no record to be
// routed (its slot decides); a record carries an override and, later, its
// tier and limits.
type TenantRecord struct {
	Tenant shardline.TenantID `json:"tenant"`
	// Shard overrides the tenant's slot; "" when the slot decides.
	Shard     shardline.ShardID `json:"shard,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	// ModRevision is the etcd revision that last changed the record. It is
	// not stored in the value; Watcher.WaitRevision(ModRevision) waits until
	// the watcher's map has the change.
	ModRevision int64 `json:"-"`
}

// Pinned reports whether the record overrides the tenant's slot.
func (r TenantRecord) Pinned() bool { return r.Shard != "" }

func (s *Store) decodeTenant(kv *mvccpb.KeyValue) (TenantRecord, error) {
	id, ok := trimmed(string(kv.Key), s.keys.tenantPrefix())
	var rec TenantRecord
	if !ok {
		return rec, fmt.Errorf("etcdstore: key %q is not a tenant key", kv.Key)
	}
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return rec, fmt.Errorf("decode tenant %s: %w", id, err)
	}
	if string(rec.Tenant) != id {
		return rec, fmt.Errorf("etcdstore: tenant record at %q names tenant %q", kv.Key, rec.Tenant)
	}
	rec.ModRevision = kv.ModRevision
	return rec, nil
}

// GetTenant returns the record of a registered tenant, or an error wrapping
// shardline.ErrTenantNotFound.
func (s *Store) GetTenant(ctx context.Context, tenant shardline.TenantID) (TenantRecord, error) {
	if err := shardline.ValidateTenant(string(tenant)); err != nil {
		return TenantRecord{}, err
	}
	resp, err := s.cli.Get(ctx, s.keys.tenant(tenant))
	if err != nil {
		return TenantRecord{}, fmt.Errorf("get tenant %s: %w", tenant, err)
	}
	if len(resp.Kvs) == 0 {
		return TenantRecord{}, fmt.Errorf("get tenant: %w", shardline.TenantNotRegistered(tenant))
	}
	return s.decodeTenant(resp.Kvs[0])
}

// ListTenants returns every registered tenant, sorted by id.
func (s *Store) ListTenants(ctx context.Context) ([]TenantRecord, error) {
	resp, err := s.cli.Get(ctx, s.keys.tenantPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	recs := make([]TenantRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec, err := s.decodeTenant(kv)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b TenantRecord) int { return strings.Compare(string(a.Tenant), string(b.Tenant)) })
	return recs, nil
}

// CreateTenant registers tenant, pinned to shard unless shard is "". For a
// tenant that exists already it is a no-op returning the record when shard
// is "" or the shard it is pinned to, and otherwise pins it to shard.
//
// Errors wrap shardline.ErrInvalidTenant, ErrInvalidShard, ErrShardNotFound,
// ErrNoPlacement (not bootstrapped) or ErrConflict (too many lost races).
func (s *Store) CreateTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantRecord, error) {
	return s.changeTenant(ctx, "create tenant", tenant, shard, func(old *TenantRecord) (TenantRecord, bool, error) {
		if old == nil {
			return TenantRecord{Tenant: tenant, Shard: shard, CreatedAt: time.Now().UTC()}, true, nil
		}
		if shard == "" || old.Shard == shard {
			return *old, false, nil
		}
		rec := *old
		rec.Shard = shard
		return rec, true, nil
	})
}

// PinTenant overrides the slot of tenant with shard, registering the tenant
// if needed. Pinning to the shard it is pinned to is a no-op.
//
// Errors are those of CreateTenant; shard may not be "".
func (s *Store) PinTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantRecord, error) {
	if shard == "" {
		return TenantRecord{}, fmt.Errorf("pin tenant %s: %w: no shard given", tenant, shardline.ErrInvalidShard)
	}
	return s.changeTenant(ctx, "pin tenant", tenant, shard, func(old *TenantRecord) (TenantRecord, bool, error) {
		if old == nil {
			return TenantRecord{Tenant: tenant, Shard: shard, CreatedAt: time.Now().UTC()}, true, nil
		}
		if old.Shard == shard {
			return *old, false, nil
		}
		rec := *old
		rec.Shard = shard
		return rec, true, nil
	})
}

// UnpinTenant removes the override of a registered tenant, so its slot
// decides again; the record stays. An unpinned tenant is left as it is.
//
// Errors wrap shardline.ErrInvalidTenant, ErrTenantNotFound, ErrNoPlacement
// or ErrConflict.
func (s *Store) UnpinTenant(ctx context.Context, tenant shardline.TenantID) (TenantRecord, error) {
	return s.changeTenant(ctx, "unpin tenant", tenant, "", func(old *TenantRecord) (TenantRecord, bool, error) {
		if old == nil {
			return TenantRecord{}, false, fmt.Errorf("unpin tenant: %w", shardline.TenantNotRegistered(tenant))
		}
		if old.Shard == "" {
			return *old, false, nil
		}
		rec := *old
		rec.Shard = ""
		return rec, true, nil
	})
}

// changeTenant reads tenant's record together with the existence of shard
// and the slot table, lets change decide the new record, and writes it in a
// transaction conditioned on the record's mod revision and on shard still
// existing. change gets nil for an unregistered tenant and returns the new
// record and whether to write it.
func (s *Store) changeTenant(ctx context.Context, what string, tenant shardline.TenantID, shard shardline.ShardID,
	change func(old *TenantRecord) (TenantRecord, bool, error)) (TenantRecord, error) {
	if err := shardline.ValidateTenant(string(tenant)); err != nil {
		return TenantRecord{}, fmt.Errorf("%s: %w", what, err)
	}
	if shard != "" {
		if err := shardline.ValidateShardID(string(shard)); err != nil {
			return TenantRecord{}, fmt.Errorf("%s %s: %w", what, tenant, err)
		}
	}
	tkey := s.keys.tenant(tenant)
	skey := s.keys.shard(shard)
	var out TenantRecord
	err := s.retry(ctx, fmt.Sprintf("%s %s", what, tenant), func() (bool, error) {
		reads := []clientv3.Op{
			clientv3.OpGet(tkey),
			clientv3.OpGet(s.keys.slots(), clientv3.WithCountOnly()),
		}
		if shard != "" {
			reads = append(reads, clientv3.OpGet(skey, clientv3.WithCountOnly()))
		}
		resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
		if err != nil {
			return false, fmt.Errorf("%s %s: %w", what, tenant, err)
		}
		if resp.Responses[1].GetResponseRange().Count == 0 {
			return false, fmt.Errorf("%s %s: %w", what, tenant, shardline.ErrNoPlacement)
		}
		if shard != "" && resp.Responses[2].GetResponseRange().Count == 0 {
			return false, fmt.Errorf("%s %s: %w", what, tenant, shardline.ShardNotFound(shard))
		}
		var old *TenantRecord
		var modRev int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			rec, err := s.decodeTenant(kvs[0])
			if err != nil {
				return false, err
			}
			old, modRev = &rec, kvs[0].ModRevision
		}
		rec, write, err := change(old)
		if err != nil || !write {
			out = rec
			return err == nil, err
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return false, fmt.Errorf("encode tenant %s: %w", tenant, err)
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(tkey), "=", modRev)}
		if rec.Shard != "" {
			cmps = append(cmps, clientv3.Compare(clientv3.Version(s.keys.shard(rec.Shard)), ">", 0))
		}
		wresp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(tkey, string(b))).Commit()
		if err != nil {
			return false, fmt.Errorf("%s %s: %w", what, tenant, err)
		}
		if !wresp.Succeeded {
			return false, nil
		}
		rec.ModRevision = wresp.Header.Revision
		out = rec
		return true, nil
	})
	return out, err
}
