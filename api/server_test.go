package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/shardmgr"
	"github.com/shardline/shardline/storage/etcdstore"
	"github.com/shardline/shardline/storage/etcdstore/etcdtest"
)

// failingSchema applies every script, except that a script containing
// "FAIL" fails on s2.
func failingSchema(_ context.Context, dsn, sql string) error {
	if strings.Contains(sql, "FAIL") && strings.Contains(dsn, "s2") {
		return errors.New(`ERROR: relation "x" already exists (SQLSTATE 42P07)`)
	}
	return nil
}

type routerRev int64

func (r routerRev) MapRevision() int64 { return int64(r) }

func (r routerRev) ReplicaHealth() map[string]shardline.ReplicaHealth {
	return map[string]shardline.ReplicaHealth{"s1-replica1": {Member: "s1-replica1", Shard: "s1", Healthy: true, LagBytes: 42, LagMillis: 7}}
}

// testServer serves the API over a manager on a fresh embedded etcd,
// bootstrapped with shards s1..sN unless shards is 0.
func testServer(t testing.TB, shards int, ready func() bool) (*httptest.Server, *api.Client) {
	t.Helper()
	return testServerWith(t, shards, func(c *api.Config) { c.Ready = ready })
}

// testServerWith is testServer with a hook to change the API's Config.
func testServerWith(t testing.TB, shards int, change func(*api.Config)) (*httptest.Server, *api.Client) {
	t.Helper()
	store, err := etcdstore.NewStore(etcdtest.Start(t), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if shards > 0 {
		var list []shardline.Shard
		for i := 1; i <= shards; i++ {
			id := fmt.Sprintf("s%d", i)
			list = append(list, shardline.Shard{
				ID:       shardline.ShardID(id),
				Primary:  shardline.Member{Name: id + "-primary", DSN: "postgres://" + id + "-primary/app"},
				Replicas: []shardline.Member{{Name: id + "-replica1", DSN: "postgres://" + id + "-replica1/app"}},
			})
		}
		if _, err := store.Bootstrap(context.Background(), list); err != nil {
			t.Fatal(err)
		}
	}
	mgr, err := shardmgr.New(shardmgr.Config{Store: store, Schema: shardmgr.SchemaApplierFunc(failingSchema), Data: shardmgr.TenantDataFunc(fakeRows), Router: routerRev(7)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Manager: mgr, Users: store}
	if change != nil {
		change(&cfg)
	}
	h, err := api.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, api.NewClient(srv.URL, srv.Client())
}

func TestHealthz(t *testing.T) {
	var ready atomic.Bool
	srv, c := testServer(t, 1, ready.Load)
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("healthz before ready = %d", resp.StatusCode)
	}
	ready.Store(true)
	if err := c.Healthz(t.Context()); err != nil {
		t.Errorf("healthz when ready: %v", err)
	}
}

func TestStatusAndTenants(t *testing.T) {
	ctx := t.Context()
	_, c := testServer(t, 2, nil)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "demo" || st.MapRevision != 7 || st.EtcdRevision == 0 || len(st.Shards) != 2 {
		t.Fatalf("status %+v", st)
	}
	s1 := st.Shards[0]
	if r := st.Shards[1].Replicas; len(r) != 1 || r[0].Healthy || r[0].LagMS != -1 {
		t.Errorf("unsampled replica of s2 = %+v, want unhealthy with lag_ms -1", r)
	}
	if r := s1.Replicas; len(r) == 1 && (!r[0].Healthy || r[0].LagBytes != 42 || r[0].LagMS != 7) {
		t.Errorf("replica health of s1 = %+v, want the router's sample", r[0])
	}
	if s1.ID != "s1" || s1.Slots != 2048 || s1.Primary.Name != "s1-primary" || len(s1.Replicas) != 1 || s1.Replicas[0].DSN != "postgres://s1-replica1/app" {
		t.Errorf("s1 = %+v", s1)
	}

	v, err := c.ShowTenant(ctx, "ghost")
	if err != nil || v.Registered || v.Tenant != "ghost" || v.Slot != shardline.SlotOf("ghost") {
		t.Errorf("show unknown = %+v, %v", v, err)
	}
	v, err = c.CreateTenant(ctx, "acme", "s2")
	if err != nil || !v.Registered || !v.Pinned || v.Shard != "s2" {
		t.Errorf("create = %+v, %v", v, err)
	}
	if _, err := c.CreateTenant(ctx, "beta", ""); err != nil {
		t.Fatal(err)
	}
	v, err = c.PinTenant(ctx, "beta", "s1")
	if err != nil || !v.Pinned || v.Shard != "s1" {
		t.Errorf("pin = %+v, %v", v, err)
	}
	v, err = c.UnpinTenant(ctx, "beta")
	if err != nil || v.Pinned {
		t.Errorf("unpin = %+v, %v", v, err)
	}
	if v, err = c.PinTenant(ctx, "gamma", ""); err != nil || !v.Pinned || !v.Registered {
		t.Errorf("pin in place = %+v, %v", v, err)
	}
	list, err := c.ListTenants(ctx)
	if err != nil || len(list) != 3 || list[0].Tenant != "acme" || list[2].Tenant != "gamma" {
		t.Errorf("list = %+v, %v", list, err)
	}
	st, err = c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Shards[1].PinnedTenants < 1 {
		t.Errorf("s2 pinned tenants = %d", st.Shards[1].PinnedTenants)
	}

	_, err = c.CreateTenant(ctx, "a b", "")
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "invalid tenant") {
		t.Errorf("create invalid = %v", err)
	}
	if _, err = c.CreateTenant(ctx, "acme", "s9"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("create on unknown shard = %v", err)
	}
}

func TestApplySchema(t *testing.T) {
	ctx := t.Context()
	_, c := testServer(t, 3, nil)
	res, err := c.ApplySchema(ctx, "CREATE TABLE t (tenant_id text)")
	if err != nil || len(res) != 3 || !res[0].OK || !res[2].OK {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	res, err = c.ApplySchema(ctx, "CREATE TABLE x (tenant_id text) -- FAIL")
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity {
		t.Fatalf("failing apply error = %v", err)
	}
	if !strings.Contains(apiErr.Message, "not applied on s2, s3; applied on s1") {
		t.Errorf("message %q", apiErr.Message)
	}
	if len(res) != 3 || !res[0].OK || res[1].OK || !strings.Contains(res[1].Error, "already exists") || res[2].OK {
		t.Errorf("results %+v", res)
	}
}

func TestBadRequests(t *testing.T) {
	srv, _ := testServer(t, 2, nil)
	big := `{"tenant":"` + strings.Repeat("a", 2<<20) + `"}`
	bigSQL := `{"sql":"` + strings.Repeat("x", 11<<20) + `"}`
	for _, tc := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		{"POST", "/v1/tenants", ``, 400, "empty"},
		{"POST", "/v1/tenants", `{`, 400, "malformed JSON"},
		{"POST", "/v1/tenants", `{"tenant":"acme",}`, 400, "malformed JSON"},
		{"POST", "/v1/tenants", `[]`, 400, "JSON object"},
		{"POST", "/v1/tenants", `"acme"`, 400, "JSON object"},
		{"POST", "/v1/tenants", `{"tenant":1}`, 400, "tenant\\\" must be a JSON string"},
		{"POST", "/v1/tenants", `{"tenant":"acme","tier":"gold"}`, 400, "unknown field \\\"tier"},
		{"POST", "/v1/tenants", `{"tenant":"acme"} {}`, 400, "exactly one"},
		{"POST", "/v1/tenants", `{"tenant":""}`, 400, `invalid tenant id \"\": it is empty (hint: a tenant id is 1 to 128 bytes`},
		{"POST", "/v1/tenants", `{"tenant":"a'b"}`, 400, `invalid tenant id \"a'b\": byte`},
		{"POST", "/v1/tenants", `{"tenant":"acme","shard":"S 1"}`, 400, `invalid shard id \"S 1\": a shard id is 1 to 63 bytes`},
		{"POST", "/v1/tenants", `{"tenant":"acme","shard":"s9"}`, 404, `no shard \"s9\" in this cluster (hint: 'shardline status' lists the shards)`},
		{"POST", "/v1/tenants", big, 413, "larger than"},
		{"GET", "/v1/tenants/a%20b", ``, 400, `invalid tenant id \"a b\": byte ' ' at offset 1 is not allowed`},
		{"GET", "/v1/tenants/a%2Fb", ``, 400, `invalid tenant id \"a/b\"`},
		{"PUT", "/v1/tenants/acme/pin", `{"shard":"s9"}`, 404, `no shard \"s9\" in this cluster`},
		{"PUT", "/v1/tenants/acme/pin", `{"shard":5}`, 400, "must be a JSON string"},
		{"DELETE", "/v1/tenants/nobody/pin", ``, 404, `tenant \"nobody\" is not registered (hint: `},
		{"POST", "/v1/schema", `{"sql":"  "}`, 400, "the schema script is empty"},
		{"POST", "/v1/schema", `{"query":"x"}`, 400, "unknown field"},
		{"POST", "/v1/schema", bigSQL, 413, "larger than"},
		{"GET", "/v1/nothing", ``, 404, "no route"},
		{"DELETE", "/v1/status", ``, 405, "not allowed"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := fmt.Sprintf("%s %s %.40s", tc.method, tc.path, tc.body)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", name, resp.StatusCode, tc.want, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", name, ct)
		}
		if !strings.Contains(string(b), tc.msg) || !strings.HasPrefix(string(b), `{"error":`) {
			t.Errorf("%s: body %s, want an error naming %q", name, b, tc.msg)
		}
		// One sentence for people: no package prefixes, no step names.
		for _, internal := range []string{"shardline: ", "shardmgr: ", "etcdstore: ", "locate", "create tenant", "pin tenant", "get tenant"} {
			if strings.Contains(string(b), internal) {
				t.Errorf("%s: body %s shows %q", name, b, internal)
			}
		}
	}
}

func TestNotBootstrapped(t *testing.T) {
	_, c := testServer(t, 0, nil)
	_, err := c.Status(t.Context())
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || !strings.Contains(apiErr.Message, "no placement") {
		t.Fatalf("status before bootstrap = %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = api.NewClient("http://"+addr, nil).Status(t.Context())
	if !errors.Is(err, api.ErrUnreachable) {
		t.Errorf("closed port: %v, want ErrUnreachable", err)
	}

	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>teapot</html>", http.StatusTeapot)
	}))
	defer other.Close()
	_, err = api.NewClient(other.URL+"/", nil).Status(t.Context())
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTeapot || !strings.Contains(apiErr.Message, "teapot") {
		t.Errorf("foreign server: %v", err)
	}
}

// FuzzCreateTenantBody sends arbitrary bodies to POST /v1/tenants: whatever
// arrives, the answer is never a 5xx.
func FuzzCreateTenantBody(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"tenant":"acme"}`, `{"tenant":"acme","shard":"s2"}`, `{"tenant":"acme","shard":"s9"}`,
		`{"tenant":null}`, `{"tenant":"` + strings.Repeat("x", 200) + `"}`, `{"tenant":"\u0000"}`,
		`{"tenant":"a","tenant":"b"}`, `[1,2]`, `{"shard":{}}`, `{"tenant":"é"}`, "\xff\xfe", `{"tenant":"t1"}garbage`,
		`{"tenant":"x","shard":""}`, `{"tenant":1e999}`,
	} {
		f.Add([]byte(seed))
	}
	srv, _ := testServer(f, 2, nil)
	h := srv.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/tenants", strings.NewReader(string(body)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusCreated && !strings.HasPrefix(rec.Body.String(), `{"error":`) {
			t.Fatalf("body %q: status %d without an error document: %s", body, rec.Code, rec.Body)
		}
	})
}

// fakeRows says tenant "loaded" has rows in public.orders on every shard,
// and no other tenant has any (the real check is shardmgr's
// TestPinRefusesTenantWithRows).
func fakeRows(_ context.Context, _ string, t shardline.TenantID) (string, error) {
	if t == "loaded" {
		return "public.orders", nil
	}
	return "", nil
}

// TestPinTenantWithRowsIsA409 pins a tenant that has rows away from its
// shard: 409 with the manager's sentence and hint; and says what a pin in
// place and a second create did.
func TestPinTenantWithRowsIsA409(t *testing.T) {
	ctx := t.Context()
	_, c := testServer(t, 2, nil)
	v, err := c.ShowTenant(ctx, "loaded")
	if err != nil {
		t.Fatal(err)
	}
	home := v.Shard
	other := map[string]string{"s1": "s2", "s2": "s1"}[home]
	_, err = c.PinTenant(ctx, "loaded", other)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict ||
		!strings.HasPrefix(apiErr.Message, "tenant loaded has rows on shard "+home+" (in public.orders)") ||
		!strings.Contains(apiErr.Message, "(hint: moving a tenant's rows is a move: 'shardline tenant move' is coming") {
		t.Fatalf("pin a tenant with rows elsewhere = %v, want a 409 saying why", err)
	}
	if v, err := c.ShowTenant(ctx, "loaded"); err != nil || v.Shard != home || v.Registered {
		t.Errorf("after the refused pin: %+v, %v; want it unregistered on %s", v, err, home)
	}
	if _, err := c.CreateTenant(ctx, "loaded", other); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("create a tenant with rows on another shard = %v, want 409", err)
	}

	v, err = c.PinTenant(ctx, "loaded", "")
	if err != nil || !v.Changed || v.Note != "pinned tenant loaded to its current shard "+home {
		t.Errorf("pin in place = %+v, %v", v, err)
	}
	v, err = c.PinTenant(ctx, "loaded", home)
	if err != nil || v.Changed || v.Note != "tenant loaded is already pinned to shard "+home+"; nothing changed" {
		t.Errorf("pin again = %+v, %v", v, err)
	}
	if _, err := c.UnpinTenant(ctx, "loaded"); err != nil {
		t.Errorf("unpin to the same shard: %v", err)
	}
	v, err = c.CreateTenant(ctx, "loaded", "")
	if err != nil || v.Changed || v.Note != "tenant loaded already exists on shard "+home+"; nothing changed" {
		t.Errorf("create again = %+v, %v", v, err)
	}
	v, err = c.PinTenant(ctx, "empty", other)
	if err != nil || !v.Changed || v.Shard != other {
		t.Errorf("pin a tenant without rows = %+v, %v", v, err)
	}
}
