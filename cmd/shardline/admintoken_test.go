package main

import (
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/api"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

func TestClusterToken(t *testing.T) {
	dir := t.TempDir()
	token, err := clusterToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(token); err != nil || len(b) != adminTokenBytes {
		t.Errorf("generated token %q: want %d random bytes as hex (%v)", token, adminTokenBytes, err)
	}
	path := filepath.Join(dir, adminTokenName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", path, fi.Mode(), err)
	}
	if again, err := clusterToken(dir); err != nil || again != token {
		t.Errorf("second call: %q, %v; want the kept token", again, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if other, _ := clusterToken(t.TempDir()); other == token {
		t.Error("two directories got the same token")
	}

	for content, want := range map[string]string{
		"  tok3n\n":  "tok3n",
		"":           "is empty",
		"\n \n":      "is empty",
		"two words":  "byte 3 of the token is a space",
		"tab\there":  "byte 3",
		"a\x00b\n":   "control character",
		"ok-._~+/=1": "ok-._~+/=1",
	} {
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readTokenFile(f)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("readTokenFile(%q) = %q, want %q", content, got, want)
		}
	}
	if _, err := readTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file read")
	}
}

func TestRequireAdminToken(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		token   string
		require bool
		err     bool
	}{
		{"127.0.0.1:6480", "", false, false},
		{"127.0.0.1:6480", "t", false, false},
		{"[::1]:6480", "", false, false},
		{"0.0.0.0:6480", "t", true, false},
		{"[::]:6480", "t", true, false},
		{"10.1.2.3:6480", "t", true, false},
		{"0.0.0.0:6480", "", true, true},
		{"10.1.2.3:6480", "", true, true},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		require, err := requireAdminToken(addr, tc.token)
		if require != tc.require || (err != nil) != tc.err {
			t.Errorf("%s token %q: %v, %v; want %v, error %v", tc.addr, tc.token, require, err, tc.require, tc.err)
		}
		if ee, ok := err.(*exitError); err != nil && (!ok || ee.code != 2 || !strings.Contains(ee.msg, "--admin-token-file")) {
			t.Errorf("%s: %v, want exit status 2 naming --admin-token-file", tc.addr, err)
		}
	}
}

// TestAdminTokenCLI runs the CLI against an admin API that requires its
// token, as `shardline up` serves it off loopback: each way of giving the
// token works, and a missing or wrong one is one line, exit status 1.
func TestAdminTokenCLI(t *testing.T) {
	const token = "c0ffee-token"
	admin := adminServerWith(t, 1, func(c *api.Config) { c.Token, c.RequireToken = token, true })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, adminTokenName), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(wrongDir, adminTokenName), []byte("not-it\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, adminTokenName)
	missing := "the admin API at " + admin + " refused the request (this admin API needs its admin token): send the cluster's admin token with --admin-token-file FILE, $SHARDLINE_ADMIN_TOKEN, or --dir DIR"
	wrong := "the admin API at " + admin + " refused the request (wrong admin token): send the cluster's admin token"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"no token", nil, nil, 1, missing},
		{"env", map[string]string{"SHARDLINE_ADMIN_TOKEN": token}, nil, 0, ""},
		{"file", nil, []string{"--admin-token-file", file}, 0, ""},
		{"dir", nil, []string{"--dir", dir}, 0, ""},
		{"SHARDLINE_DIR", map[string]string{"SHARDLINE_DIR": dir}, nil, 0, ""},
		{"wrong env", map[string]string{"SHARDLINE_ADMIN_TOKEN": "nope"}, nil, 1, wrong},
		{"wrong dir", nil, []string{"--dir", wrongDir}, 1, wrong},
		// The flag first, then the environment, then the directory.
		{"file over env", map[string]string{"SHARDLINE_ADMIN_TOKEN": "nope"}, []string{"--admin-token-file", file}, 0, ""},
		{"env over dir", map[string]string{"SHARDLINE_ADMIN_TOKEN": token}, []string{"--dir", wrongDir}, 0, ""},
		{"--dir over SHARDLINE_DIR", map[string]string{"SHARDLINE_DIR": wrongDir}, []string{"--dir", dir}, 0, ""},
		{"missing file", nil, []string{"--admin-token-file", filepath.Join(dir, "nope")}, 1, "--admin-token-file: read admin token: open "},
		{"dir without a token", nil, []string{"--dir", t.TempDir()}, 1, "--dir: read admin token: open "},
	} {
		env := map[string]string{"SHARDLINE_ADMIN": admin}
		for k, v := range tc.env {
			env[k] = v
		}
		for _, cmd := range [][]string{{"status"}, {"tenant", "list"}, {"tenant", "show", "acme"}} {
			r := runCLIEnv(t, env, append(cmd, tc.args...)...)
			if r.code != tc.code || (tc.msg != "" && !strings.Contains(r.stderr, tc.msg)) || (tc.code != 0 && strings.Count(r.stderr, "\n") != 1) {
				t.Errorf("%s: %v: exit %d, stderr %q; want %d and one line with %q", tc.name, cmd, r.code, r.stderr, tc.code, tc.msg)
			}
			if strings.Contains(r.stderr, token) {
				t.Errorf("%s: %v: stderr shows the token: %q", tc.name, cmd, r.stderr)
			}
		}
	}
	// drill's own exit status for "could not run".
	r := runCLIEnv(t, map[string]string{"SHARDLINE_ADMIN": admin}, "drill", "replica-lag", "--duration", "1s")
	if r.code != drillNotRun || !strings.Contains(r.stderr, missing) {
		t.Errorf("drill without the token: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestUpAdminToken runs `shardline up` on loopback: it generates the token
// in the cluster directory and keeps it across runs; requests without it
// are served, with it too, with a wrong one not; --admin-token-file
// replaces it.
func TestUpAdminToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and etcd")
	}
	dir := pgtest.Dir(t)
	custom := filepath.Join(t.TempDir(), "custom.token")
	if err := os.WriteFile(custom, []byte("my-own-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	info, stop := startUpWith(t, dir, 1, 0, func(c *upCommand) { c.AdminTokenFile = custom })
	if info.AdminTokenFile != custom {
		t.Errorf("token file %q, want %q", info.AdminTokenFile, custom)
	}
	if _, err := os.Stat(filepath.Join(dir, adminTokenName)); !os.IsNotExist(err) {
		t.Errorf("with --admin-token-file, %s in the cluster directory: %v", adminTokenName, err)
	}
	checkAdminAuth(t, info.AdminURL, "my-own-token")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var stdout *strings.Builder
	info, stop = startUpWith(t, dir, 1, 0, func(c *upCommand) { stdout = &strings.Builder{}; c.Stdout = stdout })
	if want := filepath.Join(dir, adminTokenName); info.AdminTokenFile != want {
		t.Errorf("token file %q, want %q", info.AdminTokenFile, want)
	}
	fi, err := os.Stat(info.AdminTokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", info.AdminTokenFile, fi.Mode(), err)
	}
	if want := "admin token: " + info.AdminTokenFile + " (not required on loopback; the CLI sends it with --dir " + dir + ")\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", stdout.String(), want)
	}
	token, err := readTokenFile(info.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	checkAdminAuth(t, info.AdminURL, token)
	if r := runCLIEnv(t, map[string]string{"SHARDLINE_ADMIN": info.AdminURL, "SHARDLINE_DIR": dir}, "status"); r.code != 0 {
		t.Errorf("status with $SHARDLINE_DIR: exit %d, %s", r.code, r.stderr)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	info, _ = startUp(t, dir, 1, 0)
	if again, err := readTokenFile(info.AdminTokenFile); err != nil || again != token {
		t.Errorf("token after a restart: %q, %v; want the same", again, err)
	}
	checkAdminAuth(t, info.AdminURL, token)
}

// checkAdminAuth checks an admin API on loopback: served without a token
// and with token, refused (401) with another one.
func checkAdminAuth(t *testing.T, adminURL, token string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusOK},
		{"Bearer " + token, http.StatusOK},
		{"Bearer " + token + "x", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, adminURL+"/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /v1/status with %q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// TestUpRefusesBadTokenFile: an --admin-token-file that cannot be used is
// exit status 1 and one line, before any port is bound.
func TestUpRefusesBadTokenFile(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.token")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		filepath.Join(t.TempDir(), "missing.token"): "--admin-token-file: read admin token: open ",
		empty: "--admin-token-file: admin token file " + empty + " is empty",
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		busy := ln.Addr().String() // a port in use would be exit 1 too, but say so
		r := runCLI(t, "", "up", "--dir", t.TempDir(), "--admin-token-file", file, "--admin", busy)
		ln.Close()
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "cannot listen") {
			t.Errorf("up --admin-token-file %s: exit %d, stderr %q; want 1 and %q", file, r.code, r.stderr, want)
		}
	}
}
