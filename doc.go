// Package shardline holds the domain types that the router and the shard
// manager share: tenant and shard ids, the slot function, the placement map
// and its etcd revision, and the errors that cross component boundaries.
//
// It imports nothing else of this module. Every other package may import it;
// it imports none of them.
package shardline
