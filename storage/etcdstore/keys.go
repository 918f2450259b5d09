package etcdstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shardline/shardline"
)

// keys lays out one cluster's placement under /shardline/<cluster>/:
//
//	shards/<id>     JSON of shardline.Shard
//	slots           the slot table, run-length encoded (see slotTable)
//	tenants/<id>    JSON of TenantRecord
//	users/<name>    JSON of shardline.User (the router's client credentials)
type keys struct {
	root string // "/shardline/<cluster>/"
}

func newKeys(cluster string) keys { return keys{root: "/shardline/" + cluster + "/"} }

func (k keys) shardPrefix() string                 { return k.root + "shards/" }
func (k keys) shard(id shardline.ShardID) string   { return k.shardPrefix() + string(id) }
func (k keys) slots() string                       { return k.root + "slots" }
func (k keys) tenantPrefix() string                { return k.root + "tenants/" }
func (k keys) tenant(id shardline.TenantID) string { return k.tenantPrefix() + string(id) }
func (k keys) userPrefix() string                  { return k.root + "users/" }
func (k keys) user(name string) string             { return k.userPrefix() + name }

// slotTable is the stored form of the slot table: runs of consecutive slots
// owned by one shard, in slot order. An even table of n shards is n runs.
type slotTable struct {
	Runs []slotRun `json:"runs"`
}

type slotRun struct {
	Shard shardline.ShardID `json:"shard"`
	Count int               `json:"count"`
}

func encodeSlots(slots []shardline.ShardID) ([]byte, error) {
	if len(slots) != shardline.SlotCount {
		return nil, fmt.Errorf("etcdstore: slot table has %d slots, want %d", len(slots), shardline.SlotCount)
	}
	var t slotTable
	for _, s := range slots {
		if n := len(t.Runs); n > 0 && t.Runs[n-1].Shard == s {
			t.Runs[n-1].Count++
			continue
		}
		t.Runs = append(t.Runs, slotRun{Shard: s, Count: 1})
	}
	return json.Marshal(t)
}

func decodeSlots(b []byte) ([]shardline.ShardID, error) {
	var t slotTable
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("etcdstore: decode slot table: %w", err)
	}
	slots := make([]shardline.ShardID, 0, shardline.SlotCount)
	for _, r := range t.Runs {
		if r.Count <= 0 || len(slots)+r.Count > shardline.SlotCount {
			return nil, errors.New("etcdstore: decode slot table: run counts do not add up to the slot count")
		}
		for range r.Count {
			slots = append(slots, r.Shard)
		}
	}
	if len(slots) != shardline.SlotCount {
		return nil, fmt.Errorf("etcdstore: decode slot table: %d slots, want %d", len(slots), shardline.SlotCount)
	}
	return slots, nil
}

// validCluster reports whether name can be a path segment of the key layout.
func validCluster(name string) error {
	if err := shardline.ValidateShardID(name); err != nil {
		return fmt.Errorf("etcdstore: cluster name %q: use 1 to 63 bytes of a-z, 0-9, '-' and '_'", name)
	}
	return nil
}

// trimmed returns key without prefix and whether it had it and something after.
func trimmed(key, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	return rest, ok && rest != ""
}
