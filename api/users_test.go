package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/auth"
)

func TestUsers(t *testing.T) {
	srv, c := testServer(t, 1, nil)
	ctx := t.Context()
	v, err := auth.NewVerifier("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.CreateUser(ctx, "acme_app", "", []string{"acme"}, v.String())
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "acme_app" || u.Kind != "app" || len(u.Tenants) != 1 || u.Tenants[0] != "acme" || u.Created.IsZero() {
		t.Fatalf("CreateUser = %+v", u)
	}
	if _, err := c.CreateUser(ctx, "ops", "admin", nil, v.String()); err != nil {
		t.Fatal(err)
	}
	status := func(err error) int {
		t.Helper()
		var ae *api.Error
		if !errors.As(err, &ae) {
			t.Fatalf("error %v is not an API error", err)
		}
		return ae.Status
	}
	if _, err := c.CreateUser(ctx, "acme_app", "", nil, v.String()); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "exists") {
		t.Errorf("CreateUser of an existing user = %v, want 409", err)
	}
	for name, tc := range map[string]struct {
		name, kind, verifier string
		tenants              []string
	}{
		"bad name":     {name: "9lives", verifier: v.String()},
		"bad kind":     {name: "x", kind: "root", verifier: v.String()},
		"bound admin":  {name: "x", kind: "admin", tenants: []string{"acme"}, verifier: v.String()},
		"bad tenant":   {name: "x", tenants: []string{"a b"}, verifier: v.String()},
		"a password":   {name: "x", verifier: "pw"},
		"md5":          {name: "x", verifier: "md5" + strings.Repeat("0", 32)},
		"no verifier":  {name: "x"},
		"name too big": {name: strings.Repeat("x", 64), verifier: v.String()},
	} {
		if _, err := c.CreateUser(ctx, tc.name, tc.kind, tc.tenants, tc.verifier); status(err) != http.StatusBadRequest {
			t.Errorf("%s: CreateUser = %v, want 400", name, err)
		}
	}
	list, err := c.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "acme_app" || list[1].Name != "ops" || list[1].Kind != "admin" {
		t.Fatalf("ListUsers = %+v", list)
	}
	// No verifier in any answer.
	resp, err := srv.Client().Get(srv.URL + "/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, []byte("SCRAM")) || bytes.Contains(body, []byte("verifier")) {
		t.Fatalf("GET /v1/users shows verifiers: %s", body)
	}
	w, err := auth.NewVerifier("new pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetUserVerifier(ctx, "acme_app", w.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetUserVerifier(ctx, "ghost", w.String()); status(err) != http.StatusNotFound {
		t.Errorf("SetUserVerifier(ghost) = %v, want 404", err)
	}
	if _, err := c.SetUserVerifier(ctx, "acme_app", "plaintext"); status(err) != http.StatusBadRequest {
		t.Errorf("SetUserVerifier with a password = %v, want 400", err)
	}
	if got, err := c.RemoveUser(ctx, "acme_app"); err != nil || got.Name != "acme_app" {
		t.Fatalf("RemoveUser = %+v, %v", got, err)
	}
	if _, err := c.RemoveUser(ctx, "acme_app"); status(err) != http.StatusNotFound || !strings.Contains(err.Error(), "shardline user list") {
		t.Errorf("RemoveUser twice = %v, want 404 with a hint", err)
	}
	if _, err := c.ShowUser(ctx, "acme_app"); status(err) != http.StatusNotFound {
		t.Errorf("ShowUser of a removed user = %v, want 404", err)
	}
	// Unknown fields are refused, as everywhere.
	resp, err = srv.Client().Post(srv.URL+"/v1/users", "application/json", strings.NewReader(`{"name":"x","password":"pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(eb.Error, "password") {
		t.Errorf("POST with a password field = %d %q, want 400 naming it", resp.StatusCode, eb.Error)
	}
}

func TestUsersWithoutStore(t *testing.T) {
	_, c := testServerWith(t, 1, func(cfg *api.Config) { cfg.Users = nil })
	if _, err := c.ListUsers(t.Context()); err == nil || !strings.Contains(err.Error(), "501") {
		t.Fatalf("ListUsers without a store = %v, want 501", err)
	}
}
