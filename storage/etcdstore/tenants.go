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

// TenantOp is a change ChangeTenant makes.
type TenantOp int

const (
	// OpCreate registers the tenant, pinned to the shard when one is
	// given. An existing tenant is left as it is, unless a shard other than
	// its pin is given: then it is pinned there.
	OpCreate TenantOp = iota
	// OpPin pins the tenant to the shard given, or where it lives now when
	// none is, registering it if needed.
	OpPin
	// OpUnpin removes a registered tenant's pin, so its slot decides again.
	OpUnpin
)

// TenantChange is what ChangeTenant did.
type TenantChange struct {
	// Record is the tenant's record after the change.
	Record TenantRecord
	// From and To are the shards the tenant was routed to before and after.
	From, To shardline.ShardID
	// Created is true when the record is new; Changed when anything was
	// written.
	Created, Changed bool
}

// MoveCheck is asked by ChangeTenant, between its read and its conditioned
// write, whether a change may route tenant from one shard to another; an
// error it returns is ChangeTenant's, and nothing is written. When the
// placement changed meanwhile the change is read and checked again.
type MoveCheck func(ctx context.Context, tenant shardline.TenantID, from, to shardline.ShardID) error

// ChangeTenant makes op on tenant's record (see TenantOp) in one
// transaction conditioned on the record and the slot table it read. A
// change that would route the tenant to another shard is first put to
// check, when it is not nil.
//
// Errors wrap shardline.ErrInvalidTenant, ErrInvalidShard, ErrShardNotFound,
// ErrTenantNotFound (OpUnpin of an unregistered tenant), ErrNoPlacement (not
// bootstrapped) or ErrConflict (too many lost races), or are check's.
func (s *Store) ChangeTenant(ctx context.Context, op TenantOp, tenant shardline.TenantID, shard shardline.ShardID, check MoveCheck) (TenantChange, error) {
	var what string
	var change func(old *TenantRecord, here shardline.ShardID) (TenantRecord, bool, error)
	switch op {
	case OpCreate:
		what = "create tenant"
		change = func(old *TenantRecord, _ shardline.ShardID) (TenantRecord, bool, error) {
			if old == nil {
				return TenantRecord{Tenant: tenant, Shard: shard, CreatedAt: time.Now().UTC()}, true, nil
			}
			if shard == "" || old.Shard == shard {
				return *old, false, nil
			}
			rec := *old
			rec.Shard = shard
			return rec, true, nil
		}
	case OpPin:
		what = "pin tenant"
		change = func(old *TenantRecord, here shardline.ShardID) (TenantRecord, bool, error) {
			to := shard
			if to == "" {
				to = here
			}
			if old == nil {
				return TenantRecord{Tenant: tenant, Shard: to, CreatedAt: time.Now().UTC()}, true, nil
			}
			if old.Shard == to {
				return *old, false, nil
			}
			rec := *old
			rec.Shard = to
			return rec, true, nil
		}
	case OpUnpin:
		what = "unpin tenant"
		if shard != "" {
			return TenantChange{}, fmt.Errorf("unpin tenant %s: a shard (%s) given", tenant, shard)
		}
		change = func(old *TenantRecord, _ shardline.ShardID) (TenantRecord, bool, error) {
			if old == nil {
				return TenantRecord{}, false, fmt.Errorf("unpin tenant: %w", shardline.TenantNotRegistered(tenant))
			}
			if old.Shard == "" {
				return *old, false, nil
			}
			rec := *old
			rec.Shard = ""
			return rec, true, nil
		}
	default:
		return TenantChange{}, fmt.Errorf("etcdstore: unknown tenant op %d", op)
	}
	return s.changeTenant(ctx, what, tenant, shard, check, change)
}

// CreateTenant registers tenant, pinned to shard unless shard is "". For a
// tenant that exists already it is a no-op returning the record when shard
// is "" or the shard it is pinned to, and otherwise pins it to shard. It
// checks nothing of the tenant's data: see ChangeTenant.
//
// Errors wrap shardline.ErrInvalidTenant, ErrInvalidShard, ErrShardNotFound,
// ErrNoPlacement (not bootstrapped) or ErrConflict (too many lost races).
func (s *Store) CreateTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantRecord, error) {
	c, err := s.ChangeTenant(ctx, OpCreate, tenant, shard, nil)
	return c.Record, err
}

// PinTenant overrides the slot of tenant with shard, registering the tenant
// if needed. Pinning to the shard it is pinned to is a no-op. It checks
// nothing of the tenant's data: see ChangeTenant.
//
// Errors are those of CreateTenant; shard may not be "".
func (s *Store) PinTenant(ctx context.Context, tenant shardline.TenantID, shard shardline.ShardID) (TenantRecord, error) {
	if shard == "" {
		return TenantRecord{}, fmt.Errorf("pin tenant %s: %w", tenant, &shardline.Error{Kind: shardline.ErrInvalidShard, Message: "no shard given to pin to"})
	}
	c, err := s.ChangeTenant(ctx, OpPin, tenant, shard, nil)
	return c.Record, err
}

// UnpinTenant removes the override of a registered tenant, so its slot
// decides again; the record stays. An unpinned tenant is left as it is. It
// checks nothing of the tenant's data: see ChangeTenant.
//
// Errors wrap shardline.ErrInvalidTenant, ErrTenantNotFound, ErrNoPlacement
// or ErrConflict.
func (s *Store) UnpinTenant(ctx context.Context, tenant shardline.TenantID) (TenantRecord, error) {
	c, err := s.ChangeTenant(ctx, OpUnpin, tenant, "", nil)
	return c.Record, err
}

// changeTenant reads tenant's record together with the existence of shard
// and the slot table, lets change decide the new record from the old one
// (nil for an unregistered tenant) and the shard the tenant lives on, puts
// a change of shard to check, and writes the record in a transaction
// conditioned on the record's and the slot table's mod revisions and on
// the new record's shard still existing.
func (s *Store) changeTenant(ctx context.Context, what string, tenant shardline.TenantID, shard shardline.ShardID, check MoveCheck,
	change func(old *TenantRecord, here shardline.ShardID) (TenantRecord, bool, error)) (TenantChange, error) {
	if err := shardline.ValidateTenant(string(tenant)); err != nil {
		return TenantChange{}, fmt.Errorf("%s: %w", what, err)
	}
	if shard != "" {
		if err := shardline.ValidateShardID(string(shard)); err != nil {
			return TenantChange{}, fmt.Errorf("%s %s: %w", what, tenant, err)
		}
	}
	tkey := s.keys.tenant(tenant)
	skey := s.keys.shard(shard)
	slot := shardline.SlotOf(tenant)
	var out TenantChange
	err := s.retry(ctx, fmt.Sprintf("%s %s", what, tenant), func() (bool, error) {
		reads := []clientv3.Op{
			clientv3.OpGet(tkey),
			clientv3.OpGet(s.keys.slots()),
		}
		if shard != "" {
			reads = append(reads, clientv3.OpGet(skey, clientv3.WithCountOnly()))
		}
		resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
		if err != nil {
			return false, fmt.Errorf("%s %s: %w", what, tenant, err)
		}
		slotKVs := resp.Responses[1].GetResponseRange().Kvs
		if len(slotKVs) == 0 {
			return false, fmt.Errorf("%s %s: %w", what, tenant, shardline.ErrNoPlacement)
		}
		slots, err := decodeSlots(slotKVs[0].Value)
		if err != nil {
			return false, err
		}
		if shard != "" && resp.Responses[2].GetResponseRange().Count == 0 {
			return false, fmt.Errorf("%s %s: %w", what, tenant, shardline.ShardNotFound(shard))
		}
		var old *TenantRecord
		var modRev int64
		here := slots[slot]
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			rec, err := s.decodeTenant(kvs[0])
			if err != nil {
				return false, err
			}
			old, modRev = &rec, kvs[0].ModRevision
			if rec.Shard != "" {
				here = rec.Shard
			}
		}
		rec, write, err := change(old, here)
		if err != nil {
			return false, err
		}
		to := slots[slot]
		if rec.Shard != "" {
			to = rec.Shard
		}
		out = TenantChange{Record: rec, From: here, To: to, Created: old == nil && write, Changed: write}
		if !write {
			return true, nil
		}
		if to != here && check != nil {
			if err := check(ctx, tenant, here, to); err != nil {
				return false, err
			}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return false, fmt.Errorf("encode tenant %s: %w", tenant, err)
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(tkey), "=", modRev),
			clientv3.Compare(clientv3.ModRevision(s.keys.slots()), "=", slotKVs[0].ModRevision),
		}
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
		out.Record.ModRevision = wresp.Header.Revision
		return true, nil
	})
	return out, err
}
