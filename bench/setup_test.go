package bench

import "testing"

func TestSetupMaxConnections(t *testing.T) {
	tests := []struct {
		clients, pool, want int
	}{
		{32, 20, 0},       // 32 + 3*20 + 2*10 + 20 = 132: PostgreSQL's 300 hold it
		{256, 20, 356},    // 256 + 60 + 20 + 20
		{200, 20, 0},      // 300 exactly
		{201, 20, 301},    // one more
		{0, 20, 0},        // idle only: no direct clients
		{256, 1, 0},       // 256 + 3 + 2 (the 2shards targets keep 1 per shard) + 20 = 281
		{1000, 100, 1420}, // 1000 + 300 + 100 + 20
	}
	for _, tt := range tests {
		cfg := SetupConfig{MaxClients: tt.clients, PoolSize: tt.pool}
		if got := cfg.maxConnections(); got != tt.want {
			t.Errorf("maxConnections(clients %d, pool %d) = %d, want %d", tt.clients, tt.pool, got, tt.want)
		}
	}
}
