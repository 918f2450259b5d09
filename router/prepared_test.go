package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline/storage/postgres"
)

// TestFailedBeginInBatchKeepsConnection sends a batch whose BEGIN is bad
// SQL: as on PostgreSQL the batch fails with the syntax error and the
// connection serves the next statement.
func TestFailedBeginInBatchKeepsConnection(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dbadbegin")
	ctx := testCtx(t)
	b := &pgx.Batch{}
	b.Queue("BEGIN garbage")
	b.Queue("SELECT 1")
	b.Queue("COMMIT")
	err := c.SendBatch(ctx, b).Close()
	if pgCode(err) != "42601" {
		t.Fatalf("batch with a bad BEGIN: %v, want 42601", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 2").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the failed batch: %d %v", n, err)
	}
	// And a bad BEGIN on its own, in both protocols.
	if _, err := c.Exec(ctx, "BEGIN garbage"); pgCode(err) != "42601" {
		t.Fatalf("simple BEGIN garbage: %v", err)
	}
	if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL nonsense", pgx.QueryExecModeExec); pgCode(err) == "" {
		t.Fatalf("extended BEGIN with a bad level: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 3").Scan(&n); err != nil || n != 3 {
		t.Fatalf("after the failed BEGINs: %d %v", n, err)
	}
}

// TestPreparedStatementsFollowDDL changes a table's columns under prepared
// statements, once through the router and once on the shard directly: the
// client's first retry, and every fresh session, must see the new shape.
func TestPreparedStatementsFollowDDL(t *testing.T) {
	for _, through := range []string{"router", "shard"} {
		t.Run("ddl through "+through, func(t *testing.T) {
			// A table of its own: the other case's sessions may still
			// hold statements on the other's.
			table := "reshaped_" + through
			// Owned by the router's server role, which the DDL through
			// the router runs as.
			applySchema(t, `DROP TABLE IF EXISTS `+table+`; CREATE TABLE `+table+` (tenant_id text NOT NULL, a int, b int);
				ALTER TABLE `+table+` OWNER TO `+postgres.AppRole+`;
				INSERT INTO `+table+` VALUES ('ddl1', 1, 2)`)
			ctx := testCtx(t)
			q := "SELECT * FROM " + table + " WHERE tenant_id = $1"
			// Several sessions prepare the statement, so that several
			// server connections hold it.
			var conns []*pgx.Conn
			var txs []pgx.Tx
			for i := 0; i < testPoolSize; i++ {
				c := connect(t, "options=-c%20shardline.tenant%3Dddl1")
				tx, err := c.Begin(ctx) // held open: each session gets a connection of its own
				if err != nil {
					t.Fatal(err)
				}
				var a, b int
				var tn string
				if err := tx.QueryRow(ctx, q, "ddl1").Scan(&tn, &a, &b); err != nil {
					t.Fatal(err)
				}
				conns, txs = append(conns, c), append(txs, tx)
			}
			for _, tx := range txs {
				if err := tx.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
			}
			ddl := "ALTER TABLE " + table + " DROP COLUMN b"
			if through == "router" {
				if _, err := conns[0].Exec(ctx, ddl); err != nil {
					t.Fatal(err)
				}
			} else {
				applySchema(t, ddl)
			}
			for i, c := range conns {
				var tn string
				var a int
				err := c.QueryRow(ctx, q, "ddl1").Scan(&tn, &a)
				if err != nil { // allowed once, as with PostgreSQL directly
					if code := pgCode(err); code != "0A000" && !strings.Contains(err.Error(), "number of field") {
						t.Fatalf("session %d, first try: %v", i, err)
					}
					err = c.QueryRow(ctx, q, "ddl1").Scan(&tn, &a)
				}
				if err != nil || a != 1 {
					t.Fatalf("session %d, retry after the DDL: %d %v", i, a, err)
				}
			}
			for i := 0; i < 2*testPoolSize; i++ {
				c := connect(t, "options=-c%20shardline.tenant%3Dddl1")
				var tn string
				var a int
				if err := c.QueryRow(ctx, q, "ddl1").Scan(&tn, &a); err != nil || a != 1 {
					t.Fatalf("fresh session %d after the DDL: %d %v", i, a, err)
				}
				c.Close(context.Background())
			}
		})
	}
}

// TestTypeRecreatedUnderPreparedStatement drops and creates again a type
// a prepared statement's parameter has: a retry (and a fresh session) gets
// the new type.
func TestTypeRecreatedUnderPreparedStatement(t *testing.T) {
	applySchema(t, `DROP TABLE IF EXISTS moody; DROP TYPE IF EXISTS mood;
		CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE moody (tenant_id text NOT NULL, m mood)`)
	ctx := testCtx(t)
	c := connect(t, "options=-c%20shardline.tenant%3Dmood1")
	const q = "INSERT INTO moody VALUES ('mood1', $1::mood)"
	if _, err := c.Exec(ctx, q, "ok"); err != nil {
		t.Fatal(err)
	}
	applySchema(t, `DROP TABLE moody; DROP TYPE mood; CREATE TYPE mood AS ENUM ('ok', 'sad', 'glad');
		CREATE TABLE moody (tenant_id text NOT NULL, m mood)`)
	if _, err := c.Exec(ctx, q, "glad"); err != nil {
		if _, err := c.Exec(ctx, q, "glad"); err != nil {
			t.Fatalf("retry after the type changed: %v", err)
		}
	}
	c2 := connect(t, "options=-c%20shardline.tenant%3Dmood1")
	if _, err := c2.Exec(ctx, q, "glad"); err != nil {
		t.Fatalf("fresh session after the type changed: %v", err)
	}
}

// TestDeallocateInSQL deallocates protocol-prepared statements with SQL,
// as psycopg and ORMs do, and checks that closed statements leave the
// server.
func TestDeallocateInSQL(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Ddealloc1")
	ctx := testCtx(t)
	// The router's role may not read pg_prepared_statements (it shows the
	// statements of every session sharing the connection); this test may.
	shard := shardOf(t, "dealloc1")
	grant := "GRANT SELECT ON pg_catalog.pg_prepared_statements TO shardline_app; GRANT EXECUTE ON FUNCTION pg_catalog.pg_prepared_statement() TO shardline_app"
	if _, err := direct(t, shard).Exec(ctx, grant); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		revoke := strings.NewReplacer("GRANT", "REVOKE", " TO ", " FROM ").Replace(grant)
		if _, err := direct(t, shard).Exec(context.Background(), revoke); err != nil {
			t.Error(err)
		}
	})
	const text = "SELECT $1::text || 'dealloc-marker'"
	if _, err := c.Prepare(ctx, "mine", text); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := c.QueryRow(ctx, "mine", "x").Scan(&s); err != nil {
		t.Fatal(err)
	}
	serverHas := func() int {
		t.Helper()
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%dealloc-marker%'",
			pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := serverHas(); n != 1 {
		t.Fatalf("server holds the statement %d times before DEALLOCATE, want 1", n)
	}
	if _, err := c.Exec(ctx, "DEALLOCATE mine"); err != nil {
		t.Fatalf("DEALLOCATE of a protocol-prepared statement: %v", err)
	}
	if _, err := c.Exec(ctx, "DEALLOCATE mine"); pgCode(err) != "26000" {
		t.Fatalf("second DEALLOCATE: %v, want 26000", err)
	}
	if n := serverHas(); n != 0 {
		t.Fatalf("server still holds the deallocated statement (%d)", n)
	}
	// DEALLOCATE ALL and DEALLOCATE PREPARE, and Close through the protocol.
	for _, name := range []string{"a", "b"} {
		if _, err := c.Prepare(ctx, name, text+" || '"+name+"'"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "DEALLOCATE PREPARE a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "DEALLOCATE ALL"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "b", "x"); pgCode(err) != "26000" {
		t.Fatalf("statement after DEALLOCATE ALL: %v", err)
	}
	if _, err := c.Prepare(ctx, "c", text+" || 'c'"); err != nil {
		t.Fatal(err)
	}
	if err := c.Deallocate(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if n := serverHas(); n != 0 {
		t.Fatalf("server still holds %d closed statements", n)
	}
}

// pgx's describe-exec mode parses and describes the unnamed statement in
// one round trip and binds it in the next: between them the session's
// server connection goes back to the pool, and the Bind may land on a
// connection that never saw the Parse (or saw another session's).
func TestUnnamedStatementAcrossSyncs(t *testing.T) {
	ctx := testCtx(t)
	const sessions = 2 * testPoolSize
	var wg sync.WaitGroup
	for i := range sessions {
		tn := fmt.Sprintf("unnamed%d", i)
		c := connect(t, "options=-c%20shardline.tenant%3D"+tn)
		wg.Go(func() {
			for j := range 30 {
				var got string
				var n int
				// A different text per session, so that another session's
				// unnamed statement on a connection is not this one.
				q := fmt.Sprintf("SELECT current_setting('shardline.tenant'), $1::int + %d", i)
				if err := c.QueryRow(ctx, q, pgx.QueryExecModeDescribeExec, j).Scan(&got, &n); err != nil {
					t.Errorf("session %d, query %d: %v", i, j, err)
					return
				}
				if got != tn || n != j+i {
					t.Errorf("session %d, query %d: got %q %d, want %q %d", i, j, got, n, tn, j+i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A simple Query destroys the unnamed statement, on a server and through
// the router alike: a Bind of it afterwards fails with 26000, and the
// session stays usable.
func TestSimpleQueryDestroysUnnamedStatement(t *testing.T) {
	ctx := testCtx(t)
	for name, c := range map[string]*pgx.Conn{
		"server": direct(t, shardOf(t, "unnamed-q")),
		"router": connect(t, "options=-c%20shardline.tenant%3Dunnamed-q"),
	} {
		pc := c.PgConn()
		if _, err := pc.Prepare(ctx, "", "SELECT 41 + 1", nil); err != nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		if r := pc.ExecPrepared(ctx, "", nil, nil, nil).Read(); r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != "42" {
			t.Fatalf("%s: bind before the query: %v %q", name, r.Err, r.Rows)
		}
		if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatalf("%s: simple query: %v", name, err)
		}
		r := pc.ExecPrepared(ctx, "", nil, nil, nil).Read()
		var pe *pgconn.PgError
		if !errors.As(r.Err, &pe) || pe.Code != "26000" {
			t.Errorf("%s: bind after a simple query: %v, want SQLSTATE 26000", name, r.Err)
		}
		if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Errorf("%s: session after the error: %v", name, err)
		}
	}
}

// TestPreparedStatementsAcrossServerConnections runs named prepared
// statements from many sessions that share few server connections.
func TestPreparedStatementsAcrossServerConnections(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS items (tenant_id text NOT NULL, id int NOT NULL, bound text, PRIMARY KEY (tenant_id, id))`)
	ctx := testCtx(t)
	const sessions = 8
	errs := make(chan error, sessions)
	for i := 0; i < sessions; i++ {
		c := connect(t, fmt.Sprintf("options=-c%%20shardline.tenant%%3Dprep%d", i%3))
		go func(i int, c *pgx.Conn) {
			tn := fmt.Sprintf("prep%d", i%3)
			for j := 0; j < 50; j++ {
				var got string
				var n int
				// pgx prepares each statement once per session and reuses it.
				if err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant'), $1::int + 1", j).Scan(&got, &n); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
				if got != tn || n != j+1 {
					errs <- fmt.Errorf("session %d: got %q %d, want %q %d", i, got, n, tn, j+1)
					return
				}
			}
			errs <- nil
		}(i, c)
	}
	for i := 0; i < sessions; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// An explicit prepared statement survives transactions.
	c := connect(t, "options=-c%20shardline.tenant%3Dprep0")
	if _, err := c.Prepare(ctx, "mine", "SELECT $1::text || current_setting('shardline.tenant')"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		var s string
		if err := c.QueryRow(ctx, "mine", "x").Scan(&s); err != nil || s != "xprep0" {
			t.Fatalf("prepared statement run %d: %q %v", i, s, err)
		}
	}
	if err := c.Deallocate(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "mine", "x"); err == nil {
		t.Fatal("deallocated statement still runs")
	}
}
