package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestTenantTable finds a tenant's rows in whichever tenant table holds
// them: quoted names, another schema, a partitioned table, an integer
// tenant column that cannot hold a text id.
func TestTenantTable(t *testing.T) {
	l := pgtest.ForTest(t, 1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := l.Shards()[0].Primary.DSN
	if err := postgres.ApplySchema(ctx, dsn, `
		CREATE TABLE accounts (tenant_id text, id bigint, PRIMARY KEY (tenant_id, id));
		CREATE TABLE plain (id int);
		CREATE TABLE counters (tenant_id bigint PRIMARY KEY);
		CREATE SCHEMA "Billing";
		CREATE TABLE "Billing"."Invoices" (tenant_id varchar(8), n int);
		CREATE TABLE events (tenant_id text, at date) PARTITION BY RANGE (at);
		CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
		INSERT INTO accounts VALUES ('acme', 1);
		INSERT INTO counters VALUES (42);
		INSERT INTO "Billing"."Invoices" VALUES ('beta', 1);
		INSERT INTO events VALUES ('gamma', '2026-05-01');`); err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]string{
		"acme":           "public.accounts",
		"beta":           "Billing.Invoices",
		"gamma":          "public.events",
		"42":             "public.counters",
		"nobody":         "",
		"much-too-long-": "",
	} {
		got, err := postgres.TenantTable(ctx, dsn, postgres.DefaultTenantColumn, tenant)
		if err != nil || got != want {
			t.Errorf("TenantTable(%q) = %q, %v; want %q", tenant, got, err, want)
		}
	}
}
