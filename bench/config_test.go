package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{Targets: []Target{
		{Name: "direct", Endpoints: []Endpoint{{DSN: "postgres://postgres@127.0.0.1:5432/app"}}},
		{Name: "router", Endpoints: []Endpoint{{DSN: "postgres://postgres@127.0.0.1:6432/app", Options: "-c shardline.tenant=t1"}}, ProxyPID: 1},
	}}.WithDefaults()
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !slices.Equal(c.Clients, []int{1, 8, 32, 256}) || c.Duration != 10*time.Second || c.Rounds != 3 ||
		c.IdleConns != 1000 || c.MaxThreads != 2 || c.Warmup != 2*time.Second || c.IdleSample != 2*time.Second ||
		!slices.Equal(c.Workloads, Workloads()) || !slices.Equal(c.Baselines, []string{"direct"}) ||
		c.Logger == nil || c.Progress == nil {
		t.Errorf("WithDefaults = %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no targets", func(c *Config) { c.Targets = nil }, "no targets"},
		{"empty name", func(c *Config) { c.Targets[0].Name = "" }, "empty name"},
		{"space in name", func(c *Config) { c.Targets[0].Name = "a b" }, "spaces"},
		{"duplicate name", func(c *Config) { c.Targets[1].Name = "direct" }, "used twice"},
		{"no endpoints", func(c *Config) { c.Targets[1].Endpoints = nil }, "no endpoints"},
		{"empty DSN", func(c *Config) { c.Targets[1].Endpoints[0].DSN = "" }, "empty DSN"},
		{"DSN like a flag", func(c *Config) { c.Targets[1].Endpoints[0].DSN = "-h x" }, "starts with '-'"},
		{"options newline", func(c *Config) { c.Targets[1].Endpoints[0].Options = "-c a=b\n" }, "newline"},
		{"negative pid", func(c *Config) { c.Targets[1].ProxyPID = -1 }, "pid"},
		{"unknown workload", func(c *Config) { c.Workloads = []string{"select-simple", "fast"} }, `"fast"`},
		{"duplicate workload", func(c *Config) { c.Workloads = []string{"write", "write"} }, "twice"},
		{"no workloads", func(c *Config) { c.Workloads = []string{} }, "no workloads"},
		{"no clients", func(c *Config) { c.Clients = []int{} }, "no client counts"},
		{"zero clients", func(c *Config) { c.Clients = []int{1, 0} }, "clients 0"},
		{"duplicate clients", func(c *Config) { c.Clients = []int{8, 8} }, "twice"},
		{"threads", func(c *Config) { c.MaxThreads = -1 }, "threads"},
		{"sub-second", func(c *Config) { c.Duration = 500 * time.Millisecond }, "whole seconds"},
		{"fractional", func(c *Config) { c.Duration = 1500 * time.Millisecond }, "whole seconds"},
		{"warmup", func(c *Config) { c.Warmup = 1500 * time.Millisecond }, "warmup"},
		{"rounds", func(c *Config) { c.Rounds = -2 }, "rounds"},
		{"idle", func(c *Config) { c.IdleConns = -1 }, "idle"},
		{"replica workload without its targets", func(c *Config) { c.Workloads = []string{"select-simple", "replica-read"} }, `"replica-read": no target runs it`},
		{"target workload unknown", func(c *Config) { c.Targets[1].Workloads = []string{"tpcb"} }, `"tpcb"`},
		{"metrics URL", func(c *Config) { c.Targets[1].MetricsURL = "127.0.0.1:6490" }, "metrics URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.Targets[1].Endpoints = slices.Clone(c.Targets[1].Endpoints)
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
	// A replica workload with a target of its own; the default workloads
	// keep the default targets.
	c := validConfig()
	c.Workloads = []string{"select-simple", "write-token"}
	c.Targets = append(c.Targets, Target{Name: "router-tokens", Endpoints: []Endpoint{{DSN: "x"}}, Workloads: []string{"write-token"}, MetricsURL: "http://127.0.0.1:6490/metrics"})
	if err := c.Validate(); err != nil {
		t.Errorf("replica workload with its target: %v", err)
	}
	// Only the idle workload: no client counts needed.
	c = validConfig()
	c.Workloads, c.Clients = []string{WorkloadIdle}, []int{}
	if err := c.Validate(); err != nil {
		t.Errorf("idle only without clients: %v", err)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		clients, threads, n int
		want                string
	}{
		{1, 2, 1, "[1] [1]"},
		{8, 2, 1, "[8] [2]"},
		{32, 2, 2, "[16 16] [1 1]"},
		{7, 4, 2, "[4 3] [2 2]"},
		{3, 2, 2, "[2 1] [1 1]"},
		{256, 8, 3, "[86 85 85] [3 3 2]"},
	}
	for _, tt := range tests {
		c, th := split(tt.clients, tt.threads, tt.n)
		if got := fmt.Sprint(c, th); got != tt.want {
			t.Errorf("split(%d, %d, %d) = %s, want %s", tt.clients, tt.threads, tt.n, got, tt.want)
		}
	}
}

func TestRunEndpoints(t *testing.T) {
	a, b := Endpoint{DSN: "a"}, Endpoint{DSN: "b"}
	tests := []struct {
		eps             []Endpoint
		clients, thread int
		want            string
	}{
		{[]Endpoint{a}, 1, 2, "[a]"},       // one client: one process
		{[]Endpoint{a}, 32, 2, "[a a]"},    // one process per thread
		{[]Endpoint{a}, 32, 1, "[a]"},      // -j 1: one process
		{[]Endpoint{a, b}, 32, 2, "[a b]"}, // a process per tenant already
		{[]Endpoint{a, b}, 32, 4, "[a b]"},
	}
	for _, tt := range tests {
		var dsns []string
		for _, e := range runEndpoints(tt.eps, tt.clients, tt.thread) {
			dsns = append(dsns, e.DSN)
		}
		if got := fmt.Sprint(dsns); got != tt.want {
			t.Errorf("runEndpoints(%d endpoints, %d clients, %d threads) = %s, want %s", len(tt.eps), tt.clients, tt.thread, got, tt.want)
		}
	}
}

func TestWorkloads(t *testing.T) {
	want := []string{"select-simple", "select-extended", "select-prepared", "write", "churn", "idle"}
	if got := Workloads(); !slices.Equal(got, want) {
		t.Errorf("Workloads = %q", got)
	}
	for name, args := range map[string]string{
		"select-simple": "-S -M simple", "select-extended": "-S -M extended", "select-prepared": "-S -M prepared",
		"write": "-N -M simple", "churn": "-S -M simple -C", "idle": "",
	} {
		w, err := LookupWorkload(name)
		if err != nil || strings.Join(w.Args, " ") != args || w.Idle != (name == "idle") || w.Description == "" {
			t.Errorf("LookupWorkload(%q) = %+v, %v", name, w, err)
		}
	}
	if got := ReplicaWorkloads(); !slices.Equal(got, []string{"replica-read", "write-token"}) {
		t.Errorf("ReplicaWorkloads = %q", got)
	}
	for name, args := range map[string]string{"replica-read": "-S -M simple", "write-token": "-N -M simple"} {
		w, err := LookupWorkload(name)
		if err != nil || strings.Join(w.Args, " ") != args || !w.OwnTargets || w.Idle || w.Description == "" {
			t.Errorf("LookupWorkload(%q) = %+v, %v", name, w, err)
		}
	}
	// Which targets run what.
	plain, own := Target{Name: "router"}, Target{Name: "router-replica", Workloads: []string{"replica-read"}}
	for _, tt := range []struct {
		t    Target
		w    string
		want bool
	}{{plain, "select-simple", true}, {plain, "idle", true}, {plain, "replica-read", false}, {own, "replica-read", true}, {own, "select-simple", false}, {own, "write-token", false}} {
		w, _ := LookupWorkload(tt.w)
		if got := tt.t.runs(w); got != tt.want {
			t.Errorf("%s runs %s = %v, want %v", tt.t.Name, tt.w, got, tt.want)
		}
	}
	if _, err := LookupWorkload("tpcb"); err == nil || !strings.Contains(err.Error(), "select-simple") || !strings.Contains(err.Error(), "write-token") {
		t.Errorf("LookupWorkload of an unknown name = %v", err)
	}
	// The returned args are a copy.
	w, _ := LookupWorkload("write")
	w.Args[0] = "-X"
	if w2, _ := LookupWorkload("write"); w2.Args[0] != "-N" {
		t.Error("LookupWorkload shares its args")
	}
}
