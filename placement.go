package shardline

import (
	"fmt"
	"slices"
	"sort"
)

// Placement is the whole tenant-to-shard map at one etcd revision. A
// Placement is immutable once published: readers share it without locks and
// writers build a new one (see Clone) and swap it in atomically.
type Placement struct {
	// Revision is the etcd revision the map was read at.
	Revision int64
	// Slots maps each slot to the shard that owns it.
	Slots []ShardID
	// Shards holds every shard by id.
	Shards map[ShardID]Shard
	// Overrides pins single tenants to a shard; an override wins over the
	// tenant's slot.
	Overrides map[TenantID]ShardID
}

// Location is where a tenant lives.
type Location struct {
	Tenant TenantID `json:"tenant"`
	Shard  ShardID  `json:"shard"`
	Slot   int      `json:"slot"`
	// Pinned is true when a tenant override decided the shard.
	Pinned bool `json:"pinned"`
}

// Locate returns the shard that holds t. It does not allocate.
func (p *Placement) Locate(t TenantID) Location {
	slot := SlotOf(t)
	if s, ok := p.Overrides[t]; ok {
		return Location{Tenant: t, Shard: s, Slot: slot, Pinned: true}
	}
	return Location{Tenant: t, Shard: p.Slots[slot], Slot: slot}
}

// ShardIDs returns the shard ids in sorted order.
func (p *Placement) ShardIDs() []ShardID {
	ids := make([]ShardID, 0, len(p.Shards))
	for id := range p.Shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Validate checks that every slot and override names a known shard.
func (p *Placement) Validate() error {
	if len(p.Slots) != SlotCount {
		return fmt.Errorf("placement: %d slots, want %d", len(p.Slots), SlotCount)
	}
	for i, s := range p.Slots {
		if _, ok := p.Shards[s]; !ok {
			return fmt.Errorf("placement: slot %d names %w %q", i, ErrShardNotFound, s)
		}
	}
	for t, s := range p.Overrides {
		if _, ok := p.Shards[s]; !ok {
			return fmt.Errorf("placement: tenant %q names %w %q", t, ErrShardNotFound, s)
		}
	}
	return nil
}

// SlotCounts returns how many slots each shard owns.
func (p *Placement) SlotCounts() map[ShardID]int {
	n := make(map[ShardID]int, len(p.Shards))
	for _, s := range p.Slots {
		n[s]++
	}
	return n
}

// EvenSlots spreads SlotCount slots over shards in contiguous ranges whose
// sizes differ by at most one. The shards are sorted first, so the result
// does not depend on the order they are given in.
func EvenSlots(shards []ShardID) []ShardID {
	ids := slices.Clone(shards)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	slots := make([]ShardID, SlotCount)
	if len(ids) == 0 {
		return slots
	}
	for i := range slots {
		slots[i] = ids[i*len(ids)/SlotCount]
	}
	return slots
}
