package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/shardmgr"
)

const testToken = "3f1c0ffee0c0ffee3f1c0ffee0c0ffee3f1c0ffee0c0ffee3f1c0ffee0c0ffee"

// get sends GET path with the Authorization header auth (none if "") and
// returns the status, the WWW-Authenticate header and the error message.
func get(t *testing.T, base, path, auth string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), eb.Error
}

// TestTokenRequired is the admin API as `shardline up` serves it on an
// address that is not loopback: every request, on every route, needs the
// token.
func TestTokenRequired(t *testing.T) {
	srv, c := testServerWith(t, 1, func(cfg *api.Config) { cfg.Token, cfg.RequireToken = testToken, true })
	for _, path := range []string{"/v1/status", "/v1/tenants", "/healthz", "/v1/nothing"} {
		for _, auth := range []string{"", "Basic dXNlcjpwdw==", "Bearer", "Bearer " + testToken[:len(testToken)-1], "Bearer " + testToken + "0", "Bearer x"} {
			status, challenge, msg := get(t, srv.URL, path, auth)
			if status != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") || !strings.Contains(msg, "admin token") || !strings.Contains(msg, "Authorization: Bearer") {
				t.Errorf("GET %s with %q: %d, WWW-Authenticate %q, error %q; want 401 with a Bearer challenge and what to send", path, auth, status, challenge, msg)
			}
			if strings.Contains(msg, testToken) {
				t.Errorf("GET %s with %q: the error shows the token: %q", path, auth, msg)
			}
		}
		for _, auth := range []string{"Bearer " + testToken, "bearer  " + testToken + " "} {
			if status, _, msg := get(t, srv.URL, path, auth); status == http.StatusUnauthorized {
				t.Errorf("GET %s with %q: 401 (%s) with the right token", path, auth, msg)
			}
		}
	}
	// The Client: without the token an *Error that says Unauthorized; with
	// it, the answer.
	_, err := c.Status(t.Context())
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || !apiErr.Unauthorized() {
		t.Errorf("client without the token: %v, want a 401", err)
	}
	if _, err := c.WithToken("wrong").Status(t.Context()); !errors.As(err, &apiErr) || !apiErr.Unauthorized() || !strings.HasPrefix(apiErr.Message, "wrong admin token") {
		t.Errorf("client with a wrong token: %v, want a 401 saying so", err)
	}
	if st, err := c.WithToken(testToken).Status(t.Context()); err != nil || len(st.Shards) != 1 {
		t.Errorf("client with the token: %+v, %v", st, err)
	}
	if err := c.WithToken(testToken).Healthz(t.Context()); err != nil {
		t.Errorf("healthz with the token: %v", err)
	}
}

// TestTokenOnLoopback is the admin API on loopback: a token is known but
// not required, so requests without one are served, and so are requests
// with it; a wrong one is still refused.
func TestTokenOnLoopback(t *testing.T) {
	srv, c := testServerWith(t, 1, func(cfg *api.Config) { cfg.Token = testToken })
	if _, err := c.Status(t.Context()); err != nil {
		t.Errorf("status without a token: %v", err)
	}
	if _, err := c.WithToken(testToken).Status(t.Context()); err != nil {
		t.Errorf("status with the token: %v", err)
	}
	if status, challenge, _ := get(t, srv.URL, "/v1/status", "Bearer nope"); status != http.StatusUnauthorized || !strings.Contains(challenge, "invalid_token") {
		t.Errorf("wrong token on loopback: %d %q, want 401 invalid_token", status, challenge)
	}

	// Without a token configured at all, a client that sends one is
	// served (there is nothing to check it against).
	_, open := testServer(t, 1, nil)
	if _, err := open.WithToken(testToken).Status(t.Context()); err != nil {
		t.Errorf("token sent to an API without one: %v", err)
	}
}

func TestRequireTokenNeedsToken(t *testing.T) {
	mgr := &shardmgr.Manager{}
	if _, err := api.NewServer(api.Config{Manager: mgr, RequireToken: true}); err == nil || !strings.Contains(err.Error(), "RequireToken needs a Token") {
		t.Errorf("RequireToken without a Token: %v", err)
	}
}
