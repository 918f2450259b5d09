package router

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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
			applySchema(t, `DROP TABLE IF EXISTS `+table+`; CREATE TABLE `+table+` (tenant_id text NOT NULL, a int, b int);
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
