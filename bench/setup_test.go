package bench

import "testing"

func TestSetupMaxConnections(t *testing.T) {
	tests := []struct {
		clients, pool, want int
	}{
		{32, 20, 0},       // 32 + 3*20 + 10 + 20 = 122: PostgreSQL's 300 hold it
		{256, 20, 346},    // 256 + 60 + 10 + 20
		{210, 20, 0},      // 300 exactly
		{211, 20, 301},    // one more
		{0, 20, 0},        // idle only: no direct clients
		{256, 1, 0},       // 256 + 3 + 1 (router-2shards keeps 1 per shard) + 20 = 280
		{1000, 100, 1370}, // 1000 + 300 + 50 + 20
	}
	for _, tt := range tests {
		cfg := SetupConfig{MaxClients: tt.clients, PoolSize: tt.pool}
		if got := cfg.maxConnections(); got != tt.want {
			t.Errorf("maxConnections(clients %d, pool %d) = %d, want %d", tt.clients, tt.pool, got, tt.want)
		}
	}
}
