package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AppRole is the role the router's server connections use on a local
// cluster's shards: it may log in, and is neither superuser nor BYPASSRLS,
// so that row-level security on tenant tables binds the router's sessions.
// Administrative work (schema apply, the manager's row checks, the
// router's replica monitor) keeps using the members' DSNs, as postgres.
const AppRole = "shardline_app"

// appRoleSQL creates AppRole when it is missing and grants it what an
// application needs in the database: the use of schema public, CREATE
// there (applications and pgbench create tables through the router; a
// tenant table it creates is the role's own until schema apply gives it to
// the admin, see ownerSQL), and SELECT, INSERT, UPDATE and DELETE on what
// postgres creates there: not TRUNCATE, which row-level security does not
// cover, nor TRIGGER or REFERENCES, which would let a session act on or
// probe other tenants' rows. docs/isolation.md lists what CREATE still
// allows. Every statement is idempotent, and revokes
// what earlier versions granted; roles are cluster-wide, so replicas get
// the role by streaming.
var appRoleSQL = fmt.Sprintf(`
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN
		CREATE ROLE %[1]s LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
	END IF;
END $$;
ALTER ROLE %[1]s LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
GRANT USAGE, CREATE ON SCHEMA public TO %[1]s;
REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM %[1]s;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[1]s;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %[1]s;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public REVOKE TRUNCATE, REFERENCES, TRIGGER ON TABLES FROM %[1]s;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %[1]s;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %[1]s;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO %[1]s;
`, AppRole)

// ensureAppRole creates AppRole on primary m unless it exists and grants
// it its privileges in db (see appRoleSQL).
func (m *member) ensureAppRole(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, m.dsn(db))
	if err != nil {
		return fmt.Errorf("postgres: member %s: %w", m.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, appRoleSQL); err != nil {
		return fmt.Errorf("postgres: member %s: role %s: %w", m.Name, AppRole, err)
	}
	return nil
}
