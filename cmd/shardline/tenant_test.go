package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestTenantPinKeepsTenantWithItsRows is the case end to end: a
// tenant that wrote a row through the router is not pinned to another
// shard (one line, exit 1, the tenant stays); pin in place and create again
// say what they did.
func TestTenantPinKeepsTenantWithItsRows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	info, _ := startUp(t, pgtest.Dir(t), 2, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, info.RouterDSN+"&options=-c%20shardline.tenant%3Dacme")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE notes (tenant_id text, body text); INSERT INTO notes VALUES ('acme', 'hello')"); err != nil {
		t.Fatal(err)
	}
	v, err := api.NewClient(info.AdminURL, nil).ShowTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	home := v.Shard
	other := map[string]string{"s1": "s2", "s2": "s1"}[home]

	r := runCLI(t, info.AdminURL, "tenant", "pin", "acme", "--shard", other)
	want := "shardline tenant: tenant acme has rows on shard " + home + " (in public.notes): pinning it to shard " + other +
		" would route it away from its data; nothing changed (hint: moving a tenant's rows is a move: 'shardline tenant move' is coming; until then"
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("pin acme --shard %s: exit %d, stderr %q; want 1 and one line starting %q", other, r.code, r.stderr, want)
	}
	var shard string
	if err := conn.QueryRow(ctx, "SHOW shardline.shard").Scan(&shard); err != nil || shard != home {
		t.Errorf("after the refused pin the router sends acme to %q (%v), want %s", shard, err, home)
	}

	runCLI(t, info.AdminURL, "tenant", "pin", "acme").want(t, 0, []string{"pinned tenant acme to its current shard " + home + "\n"}, nil)
	runCLI(t, info.AdminURL, "tenant", "create", "acme").want(t, 0, []string{"tenant acme already exists on shard " + home + "; nothing changed\n"}, nil)
	// A tenant of the same shard without rows is pinned away.
	fresh := ""
	for i := 0; fresh == ""; i++ {
		name := fmt.Sprintf("fresh-%d", i)
		if v, err := api.NewClient(info.AdminURL, nil).ShowTenant(ctx, name); err != nil {
			t.Fatal(err)
		} else if v.Shard == home {
			fresh = name
		}
	}
	runCLI(t, info.AdminURL, "tenant", "pin", fresh, "--shard", other).
		want(t, 0, []string{"pinned tenant " + fresh + " to shard " + other + " (it had no rows on " + home + ")\n"}, nil)
}
