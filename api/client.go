package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Client calls the admin API. It is safe for concurrent use.
//
// Errors: a response with an error status is an *Error carrying the status
// and the server's message; a server that cannot be connected to gives an
// error wrapping ErrUnreachable.
type Client struct {
	base  string
	hc    *http.Client
	token string // sent as a bearer token when not ""
}

// NewClient returns a client for the API at baseURL, such as
// "http://127.0.0.1:6480". A nil hc means http.DefaultClient; bound calls
// with their context.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// WithToken returns a client like c that sends token on every request as
// "Authorization: Bearer TOKEN"; "" sends none. c is not changed.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// BaseURL returns the URL the client calls.
func (c *Client) BaseURL() string { return c.base }

// Status returns the cluster's shards and revisions.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// CreateTenant registers tenant, pinned to shard unless shard is "".
func (c *Client) CreateTenant(ctx context.Context, tenant, shard string) (TenantView, error) {
	var v TenantView
	err := c.do(ctx, http.MethodPost, "/v1/tenants", CreateTenantRequest{Tenant: tenant, Shard: shard}, &v)
	return v, err
}

// ShowTenant returns where tenant lives; an unregistered tenant has a view
// too.
func (c *Client) ShowTenant(ctx context.Context, tenant string) (TenantView, error) {
	var v TenantView
	err := c.do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant), nil, &v)
	return v, err
}

// ListTenants returns the registered tenants, sorted by id.
func (c *Client) ListTenants(ctx context.Context) ([]TenantView, error) {
	var l TenantList
	err := c.do(ctx, http.MethodGet, "/v1/tenants", nil, &l)
	return l.Tenants, err
}

// PinTenant pins tenant to shard, or where it lives now when shard is "".
func (c *Client) PinTenant(ctx context.Context, tenant, shard string) (TenantView, error) {
	var v TenantView
	err := c.do(ctx, http.MethodPut, "/v1/tenants/"+url.PathEscape(tenant)+"/pin", PinRequest{Shard: shard}, &v)
	return v, err
}

// UnpinTenant removes tenant's override.
func (c *Client) UnpinTenant(ctx context.Context, tenant string) (TenantView, error) {
	var v TenantView
	err := c.do(ctx, http.MethodDelete, "/v1/tenants/"+url.PathEscape(tenant)+"/pin", nil, &v)
	return v, err
}

// ApplySchema runs sql on every shard primary. When a shard failed it
// returns the per-shard results together with an *Error of status 422, so
// the caller can tell which shards applied the change.
func (c *Client) ApplySchema(ctx context.Context, sql string) ([]SchemaResult, error) {
	var resp SchemaResponse
	err := c.do(ctx, http.MethodPost, "/v1/schema", SchemaRequest{SQL: sql}, &resp)
	return resp.Results, err
}

// CheckSchema reports every shard's tenant tables. When a shard could not
// be read or a table has a problem it returns the report together with an
// *Error of status 422.
func (c *Client) CheckSchema(ctx context.Context) (SchemaCheckResponse, error) {
	var resp SchemaCheckResponse
	err := c.do(ctx, http.MethodGet, "/v1/schema/check", nil, &resp)
	return resp, err
}

// CreateUser adds a user with a SCRAM-SHA-256 verifier (see
// auth.NewVerifier); kind "" is "app".
func (c *Client) CreateUser(ctx context.Context, name, kind string, tenants []string, verifier string) (UserView, error) {
	var v UserView
	err := c.do(ctx, http.MethodPost, "/v1/users", CreateUserRequest{Name: name, Kind: kind, Tenants: tenants, Verifier: verifier}, &v)
	return v, err
}

// ListUsers returns the users, sorted by name.
func (c *Client) ListUsers(ctx context.Context) ([]UserView, error) {
	var l UserList
	err := c.do(ctx, http.MethodGet, "/v1/users", nil, &l)
	return l.Users, err
}

// ShowUser returns one user.
func (c *Client) ShowUser(ctx context.Context, name string) (UserView, error) {
	var v UserView
	err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(name), nil, &v)
	return v, err
}

// SetUserVerifier replaces a user's verifier (its password).
func (c *Client) SetUserVerifier(ctx context.Context, name, verifier string) (UserView, error) {
	var v UserView
	err := c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(name)+"/verifier", SetVerifierRequest{Verifier: verifier}, &v)
	return v, err
}

// RemoveUser removes a user and returns it as it was.
func (c *Client) RemoveUser(ctx context.Context, name string) (UserView, error) {
	var v UserView
	err := c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(name), nil, &v)
	return v, err
}

// Healthz reports nil when the server answers /healthz with 200.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// do sends in as JSON (unless nil) and decodes a successful response into
// out (unless nil). A 422 response is decoded into out as well.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil && isDialError(err) {
			return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base, err)
		}
		return fmt.Errorf("api: %s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("api: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &Error{Status: resp.StatusCode, Message: errorMessage(resp, data)}
		if resp.StatusCode == http.StatusUnprocessableEntity && out != nil {
			_ = json.Unmarshal(data, out)
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("api: %s %s: decode response (is %s the admin API?): %w", method, path, c.base, err)
	}
	return nil
}

// errorMessage is the server's message from an error body, or a short
// description when the body is not ours.
func errorMessage(resp *http.Response, data []byte) string {
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
		return eb.Error
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text == "" {
		return http.StatusText(resp.StatusCode)
	}
	return text
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
