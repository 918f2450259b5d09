package bench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{Targets: []Target{
		{Name: "direct", DSN: "postgres://postgres@127.0.0.1:5432/app"},
		{Name: "router", DSN: "postgres://postgres@127.0.0.1:6432/app", Env: []string{"PGOPTIONS=-c shardline.tenant=t1"}},
	}}.WithDefaults()
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Clients != 8 || c.Duration != 10*time.Second || c.Rounds != 3 || c.Workload != "select-only" ||
		strings.Join(c.Modes, ",") != "simple,prepared" || c.Logger == nil || c.Progress == nil {
		t.Errorf("WithDefaults = %+v", c)
	}
	if c.threads() != 2 {
		t.Errorf("threads = %d, want 2", c.threads())
	}
	c.Clients = 1
	if c.threads() != 1 {
		t.Errorf("threads with 1 client = %d, want 1", c.threads())
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
		{"empty DSN", func(c *Config) { c.Targets[1].DSN = "" }, "empty DSN"},
		{"DSN like a flag", func(c *Config) { c.Targets[1].DSN = "-h x" }, "starts with '-'"},
		{"bad env", func(c *Config) { c.Targets[1].Env = []string{"PGOPTIONS"} }, "KEY=VALUE"},
		{"unknown mode", func(c *Config) { c.Modes = []string{"simple", "fast"} }, `"fast"`},
		{"duplicate mode", func(c *Config) { c.Modes = []string{"simple", "simple"} }, "twice"},
		{"no modes", func(c *Config) { c.Modes = []string{} }, "no query modes"},
		{"zero clients", func(c *Config) { c.Clients = -1 }, "clients"},
		{"sub-second", func(c *Config) { c.Duration = 500 * time.Millisecond }, "whole seconds"},
		{"fractional", func(c *Config) { c.Duration = 1500 * time.Millisecond }, "whole seconds"},
		{"rounds", func(c *Config) { c.Rounds = -2 }, "rounds"},
		{"workload", func(c *Config) { c.Workload = "-S" }, "workload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestWorkloadArgs(t *testing.T) {
	for w, want := range map[string]string{"select-only": "-S", "simple-update": "-N", "tpcb-like": "-b tpcb-like"} {
		got, err := workloadArgs(w)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("workloadArgs(%q) = %q, %v; want %q", w, got, err, want)
		}
	}
}
