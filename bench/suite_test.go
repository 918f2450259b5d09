package bench

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultSuiteConfig(t *testing.T) {
	c := DefaultSuiteConfig()
	if !slices.Equal(c.Targets, DefaultTargets()) || !slices.Equal(c.Workloads, Workloads()) || !slices.Equal(c.Clients, []int{1, 8, 32, 256}) ||
		c.Rounds != 3 || c.Duration != 10*time.Second || c.Warmup != 2*time.Second || c.MaxThreads != 2 || c.IdleConns != 1000 ||
		c.PoolSize != 20 || c.Scale != 1 {
		t.Errorf("DefaultSuiteConfig = %+v", c)
	}
	// The defaults need only the binary that starts the cluster.
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "shardline binary") {
		t.Errorf("Validate(defaults, no shardline binary) = %v", err)
	}
	c.Shardline = "shardline"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
}

// TestSuiteConfigValidate checks every setting as `shardline bench` gives
// it, before anything starts: a zero is a mistake, not a default.
func TestSuiteConfigValidate(t *testing.T) {
	throwaway := func() SuiteConfig {
		c := DefaultSuiteConfig()
		c.Shardline = "shardline"
		return c
	}
	external := func() SuiteConfig {
		c := DefaultSuiteConfig()
		c.External = &ExternalCluster{RouterDSN: "postgres://postgres@127.0.0.1:6432/app", DirectDSN: "postgres://x@127.0.0.1/app", Tenant: "t1"}
		c.Init = InitNever
		return c
	}
	tests := []struct {
		name   string
		base   func() SuiteConfig
		change func(*SuiteConfig)
		want   string // "" for valid
	}{
		{"defaults", throwaway, func(*SuiteConfig) {}, ""},
		{"external", external, func(*SuiteConfig) {}, ""},
		{"external, both tenants and servers", external, func(c *SuiteConfig) {
			c.External.Tenant2, c.External.DirectDSN2 = "t2", "postgres://x@127.0.0.1:5433/app"
		}, ""},
		{"no warm-up", throwaway, func(c *SuiteConfig) { c.Warmup = 0 }, ""},
		{"idle only, no clients", throwaway, func(c *SuiteConfig) { c.Workloads, c.Clients = []string{WorkloadIdle}, nil }, ""},
		{"replica workloads only", throwaway, func(c *SuiteConfig) { c.Workloads = ReplicaWorkloads() }, ""},
		{"every target by default", throwaway, func(c *SuiteConfig) { c.Targets = nil }, ""},
		{"most idle connections", throwaway, func(c *SuiteConfig) { c.IdleConns = 1899 }, ""},

		{"zero rounds", throwaway, func(c *SuiteConfig) { c.Rounds = 0 }, "rounds 0: want at least 1"},
		{"fractional duration", throwaway, func(c *SuiteConfig) { c.Duration = 1500 * time.Millisecond }, "duration 1.5s: want whole seconds"},
		{"zero duration", throwaway, func(c *SuiteConfig) { c.Duration = 0 }, "duration 0s"},
		{"fractional warm-up", throwaway, func(c *SuiteConfig) { c.Warmup = 1500 * time.Millisecond }, "warmup 1.5s"},
		{"zero clients", throwaway, func(c *SuiteConfig) { c.Clients = []int{0} }, "clients 0: want 1 to 10000"},
		{"no clients", throwaway, func(c *SuiteConfig) { c.Clients = nil }, "no client counts"},
		{"zero threads", throwaway, func(c *SuiteConfig) { c.MaxThreads = 0 }, "threads 0"},
		{"no workloads", throwaway, func(c *SuiteConfig) { c.Workloads = nil }, "no workloads"},
		{"unknown workload", throwaway, func(c *SuiteConfig) { c.Workloads = []string{"select-simple", "tpcb"} }, `workload "tpcb": want one of`},
		{"workload twice", throwaway, func(c *SuiteConfig) { c.Workloads = []string{"replica-read", "replica-read"} }, `workload "replica-read" listed twice`},
		{"unknown target", throwaway, func(c *SuiteConfig) { c.Targets = []string{"direct", "mysql"} }, `target "mysql": want some of direct, `},
		{"too many idle connections", throwaway, func(c *SuiteConfig) { c.IdleConns = 1900 }, "idle connections 1900: at most 1899 (PgBouncer's max_client_conn is 2000)"},
		{"no idle connections", throwaway, func(c *SuiteConfig) { c.IdleConns = 0 }, "idle connections 0"},
		{"zero pool size", throwaway, func(c *SuiteConfig) { c.PoolSize = 0 }, "pool size 0: want at least 1"},
		{"zero scale", throwaway, func(c *SuiteConfig) { c.Scale = 0 }, "scale 0: want at least 1"},
		{"no shardline binary", throwaway, func(c *SuiteConfig) { c.Shardline = "" }, "the shardline binary is required"},

		{"external without direct", external, func(c *SuiteConfig) { c.External.DirectDSN = "" },
			"external cluster: the direct DSN is required: the DSN of the primary of the shard that holds tenant t1"},
		{"external without router", external, func(c *SuiteConfig) { c.External.RouterDSN = "" }, "the router DSN is required"},
		{"external without tenant", external, func(c *SuiteConfig) { c.External.Tenant = "" }, "the tenant of the router target is required"},
		{"bad tenant", external, func(c *SuiteConfig) { c.External.Tenant = "a b" }, `tenant "a b": `},
		{"bad second tenant", external, func(c *SuiteConfig) { c.External.Tenant2 = "x;y" }, `tenant "x;y": `},
		{"second tenant the first", external, func(c *SuiteConfig) { c.External.Tenant2 = "t1" }, "the second tenant must differ from the first"},
		{"second server without second tenant", external, func(c *SuiteConfig) { c.External.DirectDSN2 = "postgres://x@127.0.0.1:5433/app" },
			"the second direct DSN needs the second tenant"},
		{"replica workload on an external cluster", external, func(c *SuiteConfig) { c.Workloads = []string{"select-simple", "write-token"} },
			"workload write-token needs the throwaway cluster"},
		{"bad init", external, func(c *SuiteConfig) { c.Init = "maybe" }, `init "maybe": want auto, always or never`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.base()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.want != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Errorf("Validate = %q, want one line", err)
			}
		})
	}
}

// TestSuiteConfigParts checks what a SuiteConfig asks of Prepare and Run.
func TestSuiteConfigParts(t *testing.T) {
	c := DefaultSuiteConfig()
	c.Dir, c.Clients, c.Warmup = "/w", []int{8, 256, 32}, 0
	if m := c.matrix(); m.Warmup >= 0 || m.WorkDir != "/w/pgbench" || m.Rounds != 3 || len(m.Targets) != 0 {
		t.Errorf("matrix = %+v, want no warm-up, pgbench's logs under the work directory", m)
	}
	c.Warmup = time.Second
	if m := c.matrix(); m.Warmup != time.Second {
		t.Errorf("matrix warm-up = %v, want 1s", m.Warmup)
	}
	if s := c.setup(); s.MaxClients != 256 || s.Dir != "/w" || s.PoolSize != 20 {
		t.Errorf("setup = %+v, want MaxClients 256", s)
	}
	c.Workloads, c.Clients = []string{WorkloadIdle}, nil
	if s := c.setup(); s.MaxClients != 0 {
		t.Errorf("setup(idle only) MaxClients = %d, want 0", s.MaxClients)
	}
}
