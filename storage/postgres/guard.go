package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/storage/clusterdir"
)

// The guard is the shardline_guard library (guard/shardline_guard.c): it
// makes shardline.tenant a setting only a superuser may write, and
// shardline.enter(tenant, token) the one way for the router's role to bind
// a tenant, with a token only the router knows. docs/isolation.md says why.
// A local cluster builds it from its source with the C compiler and the
// PostgreSQL server headers, loads it on every member, and keeps the token
// in Dir/pg/binding.token.

//go:embed guard/shardline_guard.c
var guardSource []byte

// ErrNoGuard means the guard library could not be built: no C compiler,
// or no PostgreSQL server headers.
var ErrNoGuard = errors.New("postgres: cannot build the shardline_guard library")

// guard is what a local cluster's members need of the guard: the library
// (a path without ".so", as shared_preload_libraries and CREATE FUNCTION
// take it) and the digest of the router's token.
type guard struct {
	lib    string
	digest string
	token  string
}

const (
	guardLibName   = "shardline_guard"
	tokenFileName  = "binding.token"
	guardHashName  = "shardline_guard.sha256"
	tokenByteCount = 32
)

// prepareGuard builds the library into pgDir/lib unless the one there was
// built from the same source, and reads or makes the token.
func prepareGuard(ctx context.Context, run *runner, pgDir string) (*guard, error) {
	libDir := filepath.Join(pgDir, "lib")
	if strings.ContainsAny(libDir, ",\"' ") {
		return nil, fmt.Errorf("%w: the cluster directory %s holds a comma, quote or space, which shared_preload_libraries cannot take; use another --dir", ErrNoGuard, pgDir)
	}
	if err := run.mkdir(libDir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	sum := sha256.Sum256(guardSource)
	want := hex.EncodeToString(sum[:])
	so := filepath.Join(libDir, guardLibName+".so")
	if have, err := os.ReadFile(filepath.Join(libDir, guardHashName)); err != nil || string(have) != want || !exists(so) {
		if err := buildGuard(ctx, run.binDir, libDir, so); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(libDir, guardHashName), []byte(want), 0o644); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	token, err := clusterdir.Secret(filepath.Join(pgDir, tokenFileName), "binding token", tokenByteCount)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	d := sha256.Sum256([]byte(token))
	return &guard{lib: strings.TrimSuffix(so, ".so"), digest: hex.EncodeToString(d[:]), token: token}, nil
}

// buildGuard compiles the library to so with $CC (or cc), against the
// server headers pg_config in binDir names.
func buildGuard(ctx context.Context, binDir, libDir, so string) error {
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "pg_config"), "--includedir-server").Output()
	if err != nil {
		return fmt.Errorf("%w: %s/pg_config --includedir-server: %v", ErrNoGuard, binDir, err)
	}
	include := strings.TrimSpace(string(out))
	if !exists(filepath.Join(include, "postgres.h")) {
		return fmt.Errorf("%w: no PostgreSQL server headers in %s; install them (apt-get install postgresql-server-dev-%s)",
			ErrNoGuard, include, majorOf(binDir))
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	src := filepath.Join(libDir, guardLibName+".c")
	if err := os.WriteFile(src, guardSource, 0o644); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tmp := so + ".tmp"
	cmd := exec.CommandContext(ctx, cc, "-O2", "-fPIC", "-shared", "-Wall", "-I", include, "-o", tmp, src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s: %v: %s (a C compiler is needed: apt-get install gcc)", ErrNoGuard, cc, err, tail(strings.TrimSpace(stderr.String()), 3))
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := os.Rename(tmp, so); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// majorOf guesses the PostgreSQL major version from a bin directory such as
// /usr/lib/postgresql/15/bin, for the hint; "15" otherwise.
func majorOf(binDir string) string {
	v := filepath.Base(filepath.Dir(binDir))
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return "15"
	}
	return v
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// settings returns the postgresql.conf settings that load the guard,
// added to conf's shared_preload_libraries.
func (g *guard) settings(conf map[string]string) map[string]string {
	out := make(map[string]string, len(conf)+2)
	for k, v := range conf {
		out[k] = v
	}
	libs := g.lib
	if have := strings.TrimSpace(conf["shared_preload_libraries"]); have != "" {
		libs = have + "," + libs
	}
	out["shared_preload_libraries"] = libs
	out["shardline.token_digests"] = g.digest
	return out
}

// guardSQL creates, in a database of a primary, the shardline schema's
// binding functions: enter() from the library, for the app role only, and
// current_tenant(), which the row-level security policies read. Each
// statement is idempotent.
func guardSQL(lib string) string {
	return bindingSchemaSQL + fmt.Sprintf(`
CREATE OR REPLACE FUNCTION shardline.enter(tenant text, token text) RETURNS void
	LANGUAGE c STRICT VOLATILE AS %s, 'shardline_enter';
REVOKE ALL ON FUNCTION shardline.enter(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shardline.enter(text, text) TO %s;
-- Every router connection is the same role, which PostgreSQL lets see
-- the statements of its other sessions: other tenants' SQL, literals
-- included. Only the admin reads them.
REVOKE SELECT ON pg_catalog.pg_stat_activity, pg_catalog.pg_prepared_statements FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer), pg_catalog.pg_prepared_statement() FROM PUBLIC;
`, quoteLiteral(lib), AppRole)
}

// ensureGuard creates the binding functions in database db of primary m.
func (m *member) ensureGuard(ctx context.Context, db string, g *guard) error {
	conn, err := pgx.Connect(ctx, m.dsn(db))
	if err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, guardSQL(g.lib)); err != nil {
		return fmt.Errorf("postgres: member %s: binding functions: %w", m.Name, err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
