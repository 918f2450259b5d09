package bench

import "testing"

func TestSetupMaxConnections(t *testing.T) {
	tests := []struct {
		clients, pool, want int
	}{
		{32, 20, 0},       // 32 + 3*20 + 4*10 + 20 = 152: PostgreSQL's 300 hold it
		{256, 20, 376},    // 256 + 60 + 40 + 20
		{180, 20, 0},      // 300 exactly
		{181, 20, 301},    // one more
		{0, 20, 0},        // idle only: no direct clients
		{256, 1, 0},       // 256 + 3 + 4 (the 2shards targets keep 1 per shard) + 20 = 283
		{1000, 100, 1520}, // 1000 + 300 + 200 + 20
	}
	for _, tt := range tests {
		cfg := SetupConfig{MaxClients: tt.clients, PoolSize: tt.pool}
		if got := cfg.maxConnections(); got != tt.want {
			t.Errorf("maxConnections(clients %d, pool %d) = %d, want %d", tt.clients, tt.pool, got, tt.want)
		}
	}
	// The TLS targets' pools count when they run: 256 + 60 + 40 + 20 + 2*20.
	tls := SetupConfig{MaxClients: 256, PoolSize: 20, Targets: []string{TargetPgBouncerTLS, TargetRouterTLS}}
	if got := tls.maxConnections(); got != 416 {
		t.Errorf("maxConnections with the TLS targets = %d, want 416", got)
	}
}
