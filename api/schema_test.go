package api_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
	"github.com/shardline/shardline/storage/postgres"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// TestSchemaCheck applies a schema through the API on a real shard and
// checks what GET /v1/schema/check reports: 200 while every tenant table
// is protected with a good key, 422 naming the table that is not.
func TestSchemaCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := t.Context()
	pg := pgtest.ForTest(t, 1, 0)
	store, err := etcdstore.NewStore(etcdtest.Start(t), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Bootstrap(ctx, pg.Shards()); err != nil {
		t.Fatal(err)
	}
	_, c := testServerWith(t, 0, func(cfg *api.Config) {
		m, err := shardmgr.New(shardmgr.Config{Store: store, Schema: postgres.SchemaAdmin{}, Data: shardmgr.TenantDataFunc(fakeRows)})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Manager = m
	})
	res, err := c.ApplySchema(ctx, `CREATE TABLE notes (tenant_id text, id int, PRIMARY KEY (tenant_id, id));
		CREATE TABLE plans (name text PRIMARY KEY);`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Tables) != 1 || res[0].Tables[0].Table != "\"public\".\"notes\"" || len(res[0].Tables[0].Problems) != 0 {
		t.Fatalf("apply: %+v", res)
	}
	rep, err := c.CheckSchema(ctx)
	if err != nil || rep.TenantColumn != "tenant_id" || len(rep.Results) != 1 || !rep.Results[0].Tables[0].Policy {
		t.Fatalf("check of a protected schema: %+v, %v", rep, err)
	}
	if err := postgres.ApplySchema(ctx, pg.Shards()[0].Primary.DSN, `
		CREATE TABLE events (tenant_id text, id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	rep, err = c.CheckSchema(ctx)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity {
		t.Fatalf("check with an unprotected table: %v, want a 422", err)
	}
	var events *api.TenantTable
	for i, tt := range rep.Results[0].Tables {
		if strings.Contains(tt.Table, "events") {
			events = &rep.Results[0].Tables[i]
		}
	}
	if events == nil || events.RLS || !slices.ContainsFunc(events.Problems, func(p string) bool { return strings.Contains(p, "not enabled") }) ||
		!slices.ContainsFunc(events.Problems, func(p string) bool { return strings.Contains(p, "does not lead") }) {
		t.Fatalf("events in the report: %+v", events)
	}
	if !strings.Contains(rep.Error, "problems with tenant tables") {
		t.Fatalf("report error %q", rep.Error)
	}
}
