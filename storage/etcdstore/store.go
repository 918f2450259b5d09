// Package etcdstore keeps Shardline's placement (shards, the slot table and
// tenant overrides) in etcd, and runs an embedded etcd for the one-machine
// cluster.
//
// Every change is one etcd transaction conditioned on the mod revision of
// what it read; a lost race is retried a bounded number of times and then
// reported as shardline.ErrConflict. A transaction whose outcome is unknown
// (a timeout, a lost connection) is never retried: its error is returned.
package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shardline/shardline"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxAttempts bounds how often a change is tried when the state it read
// changed before it committed.
const maxAttempts = 8

// Store reads and changes one cluster's placement in etcd. It is safe for
// concurrent use; it holds no state besides the client.
type Store struct {
	cli     *clientv3.Client
	cluster string
	keys    keys
}

// NewStore returns a Store for cluster (1 to 63 bytes of a-z, 0-9, '-', '_')
// over cli. The caller keeps owning cli.
func NewStore(cli *clientv3.Client, cluster string) (*Store, error) {
	if cli == nil {
		return nil, fmt.Errorf("etcdstore: nil etcd client")
	}
	if err := validCluster(cluster); err != nil {
		return nil, err
	}
	return &Store{cli: cli, cluster: cluster, keys: newKeys(cluster)}, nil
}

// Cluster returns the cluster name.
func (s *Store) Cluster() string { return s.cluster }

// Client returns the etcd client the store uses.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix returns the key prefix of the cluster, "/shardline/<cluster>/".
func (s *Store) Prefix() string { return s.keys.root }

// Load reads the whole placement at one revision. It returns an error
// wrapping shardline.ErrNoPlacement when the cluster was never bootstrapped.
func (s *Store) Load(ctx context.Context) (*shardline.Placement, error) {
	p, _, err := s.load(ctx)
	return p, err
}

// load is Load that also returns the revision it read at, which is
// meaningful when the error is ErrNoPlacement.
func (s *Store) load(ctx context.Context) (*shardline.Placement, int64, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.keys.shardPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.slots()),
		clientv3.OpGet(s.keys.tenantPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("load placement: %w", err)
	}
	rev := resp.Header.Revision
	shardKVs := resp.Responses[0].GetResponseRange().Kvs
	slotKVs := resp.Responses[1].GetResponseRange().Kvs
	tenantKVs := resp.Responses[2].GetResponseRange().Kvs
	if len(slotKVs) == 0 {
		return nil, rev, fmt.Errorf("load placement of cluster %q: %w", s.cluster, shardline.ErrNoPlacement)
	}
	p := &shardline.Placement{
		Revision:  rev,
		Shards:    make(map[shardline.ShardID]shardline.Shard, len(shardKVs)),
		Overrides: make(map[shardline.TenantID]shardline.ShardID),
	}
	for _, kv := range shardKVs {
		sh, err := s.decodeShard(kv)
		if err != nil {
			return nil, rev, err
		}
		p.Shards[sh.ID] = sh
	}
	if p.Slots, err = decodeSlots(slotKVs[0].Value); err != nil {
		return nil, rev, err
	}
	for _, kv := range tenantKVs {
		rec, err := s.decodeTenant(kv)
		if err != nil {
			return nil, rev, err
		}
		if rec.Shard != "" {
			p.Overrides[rec.Tenant] = rec.Shard
		}
	}
	if err := p.Validate(); err != nil {
		return nil, rev, fmt.Errorf("load placement at revision %d: %w", rev, err)
	}
	return p, rev, nil
}

// Shard returns the record of shard id, or an error wrapping
// shardline.ErrShardNotFound.
func (s *Store) Shard(ctx context.Context, id shardline.ShardID) (shardline.Shard, error) {
	resp, err := s.cli.Get(ctx, s.keys.shard(id))
	if err != nil {
		return shardline.Shard{}, fmt.Errorf("get shard %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return shardline.Shard{}, fmt.Errorf("get shard: %w", shardline.ShardNotFound(id))
	}
	return s.decodeShard(resp.Kvs[0])
}

func (s *Store) decodeShard(kv *mvccpb.KeyValue) (shardline.Shard, error) {
	id, ok := trimmed(string(kv.Key), s.keys.shardPrefix())
	var sh shardline.Shard
	if !ok {
		return sh, fmt.Errorf("etcdstore: key %q is not a shard key", kv.Key)
	}
	if err := json.Unmarshal(kv.Value, &sh); err != nil {
		return sh, fmt.Errorf("decode shard %s: %w", id, err)
	}
	if string(sh.ID) != id {
		return sh, fmt.Errorf("etcdstore: shard record at %q names shard %q", kv.Key, sh.ID)
	}
	return sh, nil
}

// Bootstrap makes sure the cluster's placement exists and returns it.
//
// The first time it writes shards and an even slot table
// (shardline.EvenSlots) in one transaction that only commits if no slot
// table exists yet. Later it leaves the slot table alone and updates the
// records of shards whose members changed, keeping their epoch and raising it
// by one when the primary changed. The shard ids must be the ones the cluster
// was bootstrapped with: adding or removing shards is not supported yet.
func (s *Store) Bootstrap(ctx context.Context, shards []shardline.Shard) (*shardline.Placement, error) {
	want, err := checkShards(shards)
	if err != nil {
		return nil, err
	}
	first := make([]clientv3.Op, 0, len(shards)+1)
	ids := make([]shardline.ShardID, 0, len(shards))
	for _, sh := range shards {
		b, err := json.Marshal(sh)
		if err != nil {
			return nil, fmt.Errorf("encode shard %s: %w", sh.ID, err)
		}
		first = append(first, clientv3.OpPut(s.keys.shard(sh.ID), string(b)))
		ids = append(ids, sh.ID)
	}
	slots, err := encodeSlots(shardline.EvenSlots(ids))
	if err != nil {
		return nil, err
	}
	first = append(first, clientv3.OpPut(s.keys.slots(), string(slots)))

	err = s.retry(ctx, "bootstrap", func() (bool, error) {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.keys.slots()), "=", 0)).
			Then(first...).
			Else(clientv3.OpGet(s.keys.shardPrefix(), clientv3.WithPrefix())).
			Commit()
		if err != nil {
			return false, fmt.Errorf("bootstrap: %w", err)
		}
		if resp.Succeeded {
			return true, nil
		}
		have := make(map[shardline.ShardID]*mvccpb.KeyValue)
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
			old, err := s.decodeShard(kv)
			if err != nil {
				return false, err
			}
			have[old.ID] = kv
			sh, ok := want[old.ID]
			if !ok || sameMembers(old, sh) {
				continue
			}
			sh.Epoch = max(old.Epoch, sh.Epoch)
			if old.Primary != sh.Primary {
				sh.Epoch++
			}
			b, err := json.Marshal(sh)
			if err != nil {
				return false, fmt.Errorf("encode shard %s: %w", sh.ID, err)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
			ops = append(ops, clientv3.OpPut(string(kv.Key), string(b)))
		}
		if err := sameIDs(have, want); err != nil {
			return false, err
		}
		if len(ops) == 0 {
			return true, nil
		}
		resp, err = s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return false, fmt.Errorf("bootstrap: update shards: %w", err)
		}
		return resp.Succeeded, nil
	})
	if err != nil {
		return nil, err
	}
	return s.Load(ctx)
}

func checkShards(shards []shardline.Shard) (map[shardline.ShardID]shardline.Shard, error) {
	if len(shards) == 0 {
		return nil, fmt.Errorf("bootstrap: %w: no shards given", shardline.ErrInvalidShard)
	}
	want := make(map[shardline.ShardID]shardline.Shard, len(shards))
	for _, sh := range shards {
		if err := shardline.ValidateShardID(string(sh.ID)); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		if _, dup := want[sh.ID]; dup {
			return nil, fmt.Errorf("bootstrap: %w: shard %s given twice", shardline.ErrInvalidShard, sh.ID)
		}
		want[sh.ID] = sh.Clone()
	}
	return want, nil
}

// sameMembers reports whether a and b have the same members and server
// user: a restart that changes either (as the first start after
// ServerUser existed does) rewrites the shard.
func sameMembers(a, b shardline.Shard) bool {
	return a.Primary == b.Primary && slices.Equal(a.Replicas, b.Replicas) && a.ServerUser == b.ServerUser
}

func sameIDs(have map[shardline.ShardID]*mvccpb.KeyValue, want map[shardline.ShardID]shardline.Shard) error {
	var haveIDs, wantIDs []shardline.ShardID
	for id := range have {
		haveIDs = append(haveIDs, id)
	}
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	slices.Sort(haveIDs)
	slices.Sort(wantIDs)
	if !slices.Equal(haveIDs, wantIDs) {
		return fmt.Errorf("bootstrap: %w: the cluster has shards %v but %v were given; adding or removing shards is not supported yet", shardline.ErrInvalidShard, haveIDs, wantIDs)
	}
	return nil
}

// retry runs try until it reports done, returns an error, or maxAttempts
// tries lost a race; then it returns an error wrapping ErrConflict. try must
// report done=false only when its transaction definitely did not commit.
func (s *Store) retry(ctx context.Context, what string, try func() (done bool, err error)) error {
	for attempt := range maxAttempts {
		if attempt > 0 {
			// Jitter so that two losers do not collide again in lock step.
			d := time.Duration(rand.Int64N(int64(attempt)*int64(5*time.Millisecond))) + time.Millisecond
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s: %w", what, ctx.Err())
			case <-t.C:
			}
		}
		done, err := try()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	return fmt.Errorf("%s: %w (gave up after %d attempts)", what, shardline.ErrConflict, maxAttempts)
}
