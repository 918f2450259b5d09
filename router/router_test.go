package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shardline/shardline"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestSimpleQueryWithStartupTenant(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dacme")
	ctx := testCtx(t)
	var tenant, shard string
	if err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&tenant); err != nil {
		t.Fatal(err)
	}
	if tenant != "acme" {
		t.Fatalf("tenant bound on shard = %q, want acme", tenant)
	}
	if err := c.QueryRow(ctx, "SHOW shardline.shard", pgx.QueryExecModeSimpleProtocol).Scan(&shard); err != nil {
		t.Fatal(err)
	}
	if shard != string(shardOf(t, "acme")) {
		t.Fatalf("SHOW shardline.shard = %q, want %q", shard, shardOf(t, "acme"))
	}
}

// TestTenantsStayOnTheirShards writes 1000 tenants' rows through the router
// and checks on each shard primary that every row sits on its tenant's shard
// and was written with the tenant bound.
func TestTenantsStayOnTheirShards(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS items (tenant_id text NOT NULL, id int NOT NULL, bound text, PRIMARY KEY (tenant_id, id))`)
	c := connect(t, "")
	ctx := testCtx(t)
	const tenants = 1000
	for i := 0; i < tenants; i++ {
		tn := fmt.Sprintf("t%04d", i)
		if _, err := c.Exec(ctx, "SET shardline.tenant = '"+tn+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO items VALUES ($1, 1, current_setting('shardline.tenant')) ON CONFLICT DO NOTHING", tn); err != nil {
			t.Fatalf("insert for %s: %v", tn, err)
		}
	}
	perShard := map[shardline.ShardID]int{}
	for _, s := range env.pg.Shards() {
		rows, err := direct(t, s.ID).Query(ctx, "SELECT tenant_id, bound FROM items WHERE tenant_id LIKE 't____'")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var tn, bound string
			if err := rows.Scan(&tn, &bound); err != nil {
				t.Fatal(err)
			}
			if want := shardOf(t, tn); want != s.ID {
				t.Errorf("tenant %s found on %s, placement says %s", tn, s.ID, want)
			}
			if bound != tn {
				t.Errorf("row of %s written with shardline.tenant = %q", tn, bound)
			}
			perShard[s.ID]++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for id, n := range perShard {
		total += n
		if n < tenants/4 {
			t.Errorf("shard %s holds only %d of %d tenants", id, n, tenants)
		}
	}
	if total != tenants {
		t.Errorf("found %d tenants' rows, want %d", total, tenants)
	}
}

func TestCommentTenantRoutesStatement(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS notes (tenant_id text NOT NULL, body text); DELETE FROM notes`)
	c := connect(t, "")
	ctx := testCtx(t)
	var bound string
	err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant') /* tenant='beta' */").Scan(&bound)
	if err != nil || bound != "beta" {
		t.Fatalf("comment tenant: bound %q, err %v", bound, err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO notes VALUES ('gamma', 'x') /*tenant='gamma',app='test'*/"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := direct(t, shardOf(t, "gamma")).QueryRow(ctx, "SELECT count(*) FROM notes WHERE tenant_id = 'gamma'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("gamma's note on its shard: n=%d err=%v", n, err)
	}
}

func TestNoTenantErrorLeavesSessionUsable(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS items (tenant_id text NOT NULL, id int NOT NULL, bound text, PRIMARY KEY (tenant_id, id))`)
	c := connect(t, "")
	ctx := testCtx(t)
	// What ORMs run right after connecting, before any tenant is known.
	for _, q := range []string{
		"SELECT version()",
		"SELECT current_schema()",
		"SHOW standard_conforming_strings",
		"SHOW transaction isolation level",
		"SET search_path TO public",
		"SELECT t.oid, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'pg_catalog' LIMIT 5",
		"SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
		"SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind = 'r' LIMIT 1",
	} {
		rows, err := c.Query(ctx, q)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
		}
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := c.Exec(ctx, "SELECT * FROM items")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeNoTenant || !strings.Contains(pe.Hint, "/* tenant=") || !strings.Contains(pe.Hint, "SET shardline.tenant") || !strings.Contains(pe.Hint, "options=") {
		t.Fatalf("tenant table without tenant: err %v (hint %q)", err, hintOf(err))
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session unusable after error: %v", err)
	}
	// Same through the simple protocol.
	_, err = c.Exec(ctx, "SELECT * FROM items", pgx.QueryExecModeSimpleProtocol)
	if pgCode(err) != codeNoTenant {
		t.Fatalf("simple protocol: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 2", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil || one != 2 {
		t.Fatalf("session unusable after simple-protocol error: %v", err)
	}
}

func hintOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Hint
	}
	return ""
}

const ledgerDDL = `CREATE TABLE IF NOT EXISTS ledger (tenant_id text NOT NULL, n int);`

func TestTransactionsAndRollback(t *testing.T) {
	applySchema(t, ledgerDDL+`DELETE FROM ledger WHERE tenant_id = 'tx1'`)
	c := connect(t, "options=-c%20shardline.tenant%3Dtx1")
	ctx := testCtx(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO ledger VALUES ('tx1', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err = c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO ledger VALUES ('tx1', 2)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := direct(t, shardOf(t, "tx1")).QueryRow(ctx, "SELECT coalesce(sum(n),0) FROM ledger WHERE tenant_id='tx1'").Scan(&sum); err != nil || sum != 2 {
		t.Fatalf("after rollback+commit sum = %d, err %v; want 2", sum, err)
	}

	// A server error inside a transaction reaches the client unchanged and
	// aborts the transaction.
	tx, err = c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1/0")
	if pgCode(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	_, err = tx.Exec(ctx, "SELECT 1")
	if pgCode(err) != "25P02" {
		t.Fatalf("statement after error: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeferredBeginWithCommentTenant: BEGIN without any tenant is answered
// by the router; the first statement's comment picks the shard.
func TestDeferredBeginWithCommentTenant(t *testing.T) {
	applySchema(t, ledgerDDL+`DELETE FROM ledger WHERE tenant_id LIKE 'd_'`)
	c := connect(t, "")
	ctx := testCtx(t)
	for _, tn := range []string{"d1", "d2", "d3", "d4"} {
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO ledger VALUES ('"+tn+"', 7) /* tenant='"+tn+"' */"); err != nil {
			t.Fatal(err)
		}
		var bound string
		if err := c.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&bound); err != nil || bound != tn {
			t.Fatalf("bound in transaction = %q, err %v", bound, err)
		}
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := direct(t, shardOf(t, tn)).QueryRow(ctx, "SELECT count(*) FROM ledger WHERE tenant_id=$1", tn).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s rows on its shard: %d, %v", tn, n, err)
		}
	}
}

func TestTenantSwitchInsideTransaction(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dsw1")
	ctx := testCtx(t)
	// Find a tenant on the other shard.
	other := ""
	for i := 0; other == ""; i++ {
		if tn := fmt.Sprintf("sw-other-%d", i); shardOf(t, tn) != shardOf(t, "sw1") {
			other = tn
		}
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1 /* tenant='"+other+"' */")
	if pgCode(err) != codeActiveTransaction {
		t.Fatalf("tenant switch inside transaction: %v", err)
	}
	_, err = tx.Exec(ctx, "SELECT 1")
	if pgCode(err) != "25P02" {
		t.Fatalf("after the switch error the transaction is aborted: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

func TestBadTenantValues(t *testing.T) {
	c := connect(t, "")
	ctx := testCtx(t)
	_, err := c.Exec(ctx, "SET shardline.tenant = 'has space'")
	if pgCode(err) != codeInvalidParameter {
		t.Fatalf("invalid tenant: %v", err)
	}
	_, err = c.Exec(ctx, "SET shardline.shard = 's2'")
	if pgCode(err) != "55P02" {
		t.Fatalf("SET shardline.shard: %v", err)
	}
	_, err = c.Exec(ctx, "SELECT set_config('shardline.tenant', 'x', false)")
	if pgCode(err) != "42501" {
		t.Fatalf("set_config of the binding: %v", err)
	}
	_, err = c.Exec(ctx, "SHOW shardline.nope")
	if pgCode(err) != "42704" {
		t.Fatalf("unknown router setting: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	// A bad tenant at startup is a fatal error naming the problem.
	_, err = pgx.Connect(ctx, routerDSN("options=-c%20shardline.tenant%3D'bad'"))
	if pgCode(err) != codeInvalidParameter {
		t.Fatalf("startup with invalid tenant: %v", err)
	}
	_, err = pgx.Connect(ctx, strings.Replace(routerDSN(""), "/app?", "/nope?", 1))
	if pgCode(err) != codeInvalidCatalog {
		t.Fatalf("wrong database: %v", err)
	}
}

// TestSessionSettingsFollowTheSession checks that a session SET is applied
// on whichever server connection serves the session next, and never leaks
// into another session.
func TestSessionSettingsFollowTheSession(t *testing.T) {
	a := connect(t, "options=-c%20shardline.tenant%3Dset1")
	ctx := testCtx(t)
	if _, err := a.Exec(ctx, "SET my.flavour = 'salty'"); err != nil {
		t.Fatal(err)
	}
	// Other sessions of the same shard take every server connection in
	// turn, so a's next transactions land on different ones.
	others := make([]*pgx.Conn, testPoolSize-1)
	for i := range others {
		others[i] = connect(t, "options=-c%20shardline.tenant%3Dset1")
	}
	seen := map[uint32]bool{}
	for round := 0; round < 6; round++ {
		var txs []pgx.Tx
		for i, o := range others[:round%len(others)+1] {
			tx, err := o.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var v *string
			if err := tx.QueryRow(ctx, "SELECT current_setting('my.flavour', true)").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != nil && *v != "" {
				t.Fatalf("round %d: session %d sees another session's setting my.flavour=%q", round, i, *v)
			}
			txs = append(txs, tx)
		}
		var v string
		var pid uint32
		if err := a.QueryRow(ctx, "SELECT current_setting('my.flavour'), pg_backend_pid()").Scan(&v, &pid); err != nil {
			t.Fatal(err)
		}
		if v != "salty" {
			t.Fatalf("round %d: session's own setting = %q on server pid %d", round, v, pid)
		}
		seen[pid] = true
		for _, tx := range txs {
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) < 2 {
		t.Fatalf("session used only %d server connection(s); the test needs it to move", len(seen))
	}
	if _, err := a.Exec(ctx, "RESET my.flavour"); err != nil {
		t.Fatal(err)
	}
	var v *string
	if err := a.QueryRow(ctx, "SELECT current_setting('my.flavour', true)").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != nil && *v != "" {
		t.Fatalf("after RESET: %q", *v)
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

func TestBatchPipeline(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dbatch")
	ctx := testCtx(t)
	b := &pgx.Batch{}
	for i := 0; i < 20; i++ {
		b.Queue("SELECT $1::int * 2", i)
	}
	b.Queue("SELECT 1/0")
	b.Queue("SELECT 3")
	br := c.SendBatch(ctx, b)
	for i := 0; i < 20; i++ {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != i*2 {
			t.Fatalf("batch item %d: %d %v", i, n, err)
		}
	}
	if _, err := br.Exec(); pgCode(err) != "22012" {
		t.Fatalf("batch error item: %v", err)
	}
	if err := br.Close(); err == nil {
		t.Log("batch close after error returned nil")
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("after batch: %v", err)
	}
}

// TestLargeBatch sends batches whose statements and results are far
// larger than the sockets hold: pgx writes a whole batch before it reads
// (reading in the background once a write blocks), and a server that
// cannot send its results stops reading. So the router must relay results
// while it forwards the rest of the batch, or the two stall. Each batch
// runs against the shard's primary directly too, which must pass.
func TestLargeBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, size int
	}{
		{"many small results", 20000, 10}, // about 1.4 MB of results, 1 MB of statements
		{"large results", 4000, 2000},     // about 8 MB of results
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(t *testing.T, c *pgx.Conn) {
				b := &pgx.Batch{}
				for i := range tc.n {
					b.Queue("SELECT $1::int, repeat('x', $2)", i, tc.size)
				}
				br := c.SendBatch(testCtx(t), b)
				for i := range tc.n {
					var got int
					var text string
					if err := br.QueryRow().Scan(&got, &text); err != nil || got != i || len(text) != tc.size {
						t.Fatalf("batch item %d: %d, %d bytes, %v", i, got, len(text), err)
					}
				}
				if err := br.Close(); err != nil {
					t.Fatal(err)
				}
			}
			t.Run("direct", func(t *testing.T) { run(t, direct(t, "s1")) })
			t.Run("router", func(t *testing.T) { run(t, connect(t, "options=-c%20shardline.tenant%3Dbigbatch")) })
		})
	}
	// An error half-way: the server skips the rest up to the Sync, the
	// router after its own drain as well, and the session goes on.
	t.Run("error half-way", func(t *testing.T) {
		c := connect(t, "options=-c%20shardline.tenant%3Dbigbatch")
		const n = 10000
		b := &pgx.Batch{}
		for i := range 2 * n {
			if i == n {
				b.Queue("SELECT 1/0")
				continue
			}
			b.Queue("SELECT $1::int", i)
		}
		br := c.SendBatch(testCtx(t), b)
		for i := range n {
			var got int
			if err := br.QueryRow().Scan(&got); err != nil || got != i {
				t.Fatalf("batch item %d: %d, %v", i, got, err)
			}
		}
		if _, err := br.Exec(); pgCode(err) != "22012" {
			t.Fatalf("item %d: %v, want division by zero", n, err)
		}
		if err := br.Close(); err == nil {
			t.Error("batch close after the error: nil, want the error")
		}
		var got int
		if err := c.QueryRow(testCtx(t), "SELECT 5").Scan(&got); err != nil || got != 5 {
			t.Fatalf("after the batch: %d, %v", got, err)
		}
	})
}

func TestCopyInAndOut(t *testing.T) {
	applySchema(t, `CREATE TABLE IF NOT EXISTS copied (tenant_id text NOT NULL, n int); DELETE FROM copied`)
	c := connect(t, "options=-c%20shardline.tenant%3Dcopy1")
	ctx := testCtx(t)
	rows := make([][]any, 5000)
	for i := range rows {
		rows[i] = []any{"copy1", i}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"tenant_id", "n"}, pgx.CopyFromRows(rows))
	if err != nil || n != int64(len(rows)) {
		t.Fatalf("CopyFrom: %d %v", n, err)
	}
	var buf strings.Builder
	tag, err := c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT n FROM copied WHERE tenant_id = 'copy1' ORDER BY n) TO STDOUT")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != int64(len(rows)) || !strings.HasPrefix(buf.String(), "0\n1\n2\n") {
		t.Fatalf("CopyTo: %d rows, starts %q", tag.RowsAffected(), buf.String()[:min(20, buf.Len())])
	}
	var cnt int
	if err := direct(t, shardOf(t, "copy1")).QueryRow(ctx, "SELECT count(*) FROM copied WHERE tenant_id='copy1'").Scan(&cnt); err != nil || cnt != len(rows) {
		t.Fatalf("rows on shard: %d %v", cnt, err)
	}
	// A failing COPY reports the server's error and the session goes on.
	_, err = c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"tenant_id", "nope"}, pgx.CopyFromRows(rows[:1]))
	if pgCode(err) != "42703" {
		t.Fatalf("copy into a missing column: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&cnt); err != nil {
		t.Fatal(err)
	}
}

func TestCancelReachesTheServer(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dcancel1&application_name=cancel1")
	checkCancel(t, c, shardOf(t, "cancel1"))
}

// checkCancel cancels a statement of c, a router session on shard, with
// the key the router gave the client, and checks that the statement ends
// cancelled and the session goes on.
func checkCancel(t *testing.T, c *pgx.Conn, shard shardline.ShardID) {
	t.Helper()
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	// Wait until the statement runs on the shard, then cancel through the
	// router.
	d := direct(t, shard)
	for {
		var running int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'").Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("sleep ended before it was cancelled: %v", err)
		case <-time.After(10 * time.Millisecond): // polling another server's state
		}
	}
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; pgCode(err) != "57014" {
		t.Fatalf("cancelled statement: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("session after cancel: %v", err)
	}
}

func TestClientGoneMidTransactionLeavesNothingOpen(t *testing.T) {
	applySchema(t, ledgerDDL)
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, routerDSN("options=-c%20shardline.tenant%3Dgone1&application_name=gone1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := c.QueryRow(ctx, "INSERT INTO ledger VALUES ('gone1', 1) RETURNING pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// Drop the TCP connection without Terminate.
	_ = c.PgConn().Conn().Close()
	d := direct(t, shardOf(t, "gone1"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state LIKE 'idle in transaction%'", pid).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server connection still idle in transaction after the client went away")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition on another server
	}
	var n int
	if err := d.QueryRow(ctx, "SELECT count(*) FROM ledger WHERE tenant_id='gone1'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("uncommitted row visible: %d %v", n, err)
	}
}

// TestPinMovesNextTransaction pins a tenant to the other shard in etcd
// while a session is open; the session's next transaction goes there.
func TestPinMovesNextTransaction(t *testing.T) {
	c := connect(t, "options=-c%20shardline.tenant%3Dpin1")
	ctx := testCtx(t)
	var before string
	if err := c.QueryRow(ctx, "SELECT current_setting('port')").Scan(&before); err != nil {
		t.Fatal(err)
	}
	from := shardOf(t, "pin1")
	to := shardline.ShardID("s1")
	if from == to {
		to = "s2"
	}
	if _, err := env.store.PinTenant(ctx, "pin1", to); err != nil {
		t.Fatal(err)
	}
	rev, err := env.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.watcher.WaitRevision(ctx, rev.Revision); err != nil {
		t.Fatal(err)
	}
	var after string
	if err := c.QueryRow(ctx, "SELECT current_setting('port')").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatalf("transaction after pin still on port %s", after)
	}
	var shard string
	if err := c.QueryRow(ctx, "SHOW shardline.shard", pgx.QueryExecModeSimpleProtocol).Scan(&shard); err != nil || shard != string(to) {
		t.Fatalf("SHOW shardline.shard after pin = %q, %v; want %s", shard, err, to)
	}
	if env.router.MapRevision() < rev.Revision {
		t.Fatalf("router reports map revision %d, placement is at %d", env.router.MapRevision(), rev.Revision)
	}
}

// TestListenPinsTheSession: LISTEN keeps the session on its server
// connection, so notifications reach it and no other session.
func TestListenPinsTheSession(t *testing.T) {
	ctx := testCtx(t)
	l := connect(t, "options=-c%20shardline.tenant%3Dpinlisten")
	if _, err := l.Exec(ctx, "LISTEN jobs"); err != nil {
		t.Fatal(err)
	}
	// Other sessions on the same shard cycle through the pool meanwhile.
	for i := 0; i < testPoolSize*2; i++ {
		o := connect(t, "options=-c%20shardline.tenant%3Dpinlisten")
		if _, err := o.Exec(ctx, "SELECT pg_notify('jobs', 'n"+fmt.Sprint(i)+"')"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < testPoolSize*2; i++ {
		n, err := l.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if n.Channel != "jobs" {
			t.Fatalf("notification on %q", n.Channel)
		}
	}
	var one int
	if err := l.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// TestIdleConnectionKilledOnServer: a pooled connection the server closed
// while idle is replaced, not handed to a session.
func TestIdleConnectionKilledOnServer(t *testing.T) {
	ctx := testCtx(t)
	c := connect(t, "options=-c%20shardline.tenant%3Didlekill")
	var pid int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	d := direct(t, shardOf(t, "idlekill"))
	var ok bool
	if err := d.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate: %v %v", ok, err)
	}
	// Await the server process's exit.
	for {
		var n int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling another server's state
	}
	var pid2 int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatalf("session after its idle server connection was terminated: %v", err)
	}
	if pid2 == pid {
		t.Fatal("same server pid after termination")
	}
}

func TestBadStartupSettings(t *testing.T) {
	needCluster(t)
	ctx := testCtx(t)
	// A setting the server does not know fails the connection, as PostgreSQL would.
	_, err := pgx.Connect(ctx, routerDSN("options=-c%20no_such_setting%3D1"))
	if pgCode(err) != "42704" {
		t.Fatalf("unknown startup setting: %v", err)
	}
	// Options that do not parse as -c name=value.
	_, err = pgx.Connect(ctx, routerDSN("options=-c+shardline.tenant%3Dx"))
	if pgCode(err) != codeInvalidParameter {
		t.Fatalf("malformed options: %v", err)
	}
	// A bad value of a real setting.
	_, err = pgx.Connect(ctx, routerDSN("options=-c%20statement_timeout%3Dforever"))
	if pgCode(err) != "22023" {
		t.Fatalf("bad setting value: %v", err)
	}
	// A valid one works, and is applied.
	c := connect(t, "options=-c%20statement_timeout%3D1234%20-c%20shardline.tenant%3Dst")
	var v string
	if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil || v != "1234ms" {
		t.Fatalf("statement_timeout = %q, %v", v, err)
	}
}

// TestRowLevelSecurityWithTheBinding: with a row-level security policy on
// current_setting('shardline.tenant'), sessions of two tenants on the same
// shard, sharing the pool's server connections in turn, each see only their
// own rows (invariant 3, enforced by the shard too).
func TestRowLevelSecurityWithTheBinding(t *testing.T) {
	applySchema(t, `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rls_app') THEN CREATE ROLE rls_app NOLOGIN; END IF;
END $$;
CREATE TABLE IF NOT EXISTS secrets (tenant_id text NOT NULL, v text);
GRANT SELECT, INSERT ON secrets TO rls_app;
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS by_tenant ON secrets;
CREATE POLICY by_tenant ON secrets USING (tenant_id = current_setting('shardline.tenant', true))
  WITH CHECK (tenant_id = current_setting('shardline.tenant', true));
DELETE FROM secrets;`)
	// Two tenants on the same shard.
	a := "rls-a"
	b := ""
	for i := 0; b == ""; i++ {
		if tn := fmt.Sprintf("rls-b%d", i); shardOf(t, tn) == shardOf(t, a) {
			b = tn
		}
	}
	ctx := testCtx(t)
	// A router of one loop: its sessions share one pool per member (with
	// more loops, each loop has pools of its own).
	_, acmeDSN := startRouter(t, Config{PoolSize: testPoolSize, Loops: 1, WaitTimeout: 5 * time.Second})
	dsnOf := func(tenant string) string { return strings.Replace(acmeDSN, "tenant%3Dacme", "tenant%3D"+tenant, 1) }
	open := func(tenant string) *pgx.Conn {
		c := connectDSN(t, dsnOf(tenant))
		if _, err := c.Exec(ctx, "SET ROLE rls_app"); err != nil { // a role without BYPASSRLS
			t.Fatal(err)
		}
		return c
	}
	ca, cb := open(a), open(b)
	// Hold all but one of the shard's server connections in open
	// transactions, so a and b take turns on the same one and its tenant
	// binding changes every time.
	for i := 0; i < testPoolSize-1; i++ {
		h := connectDSN(t, dsnOf(a))
		tx, err := h.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	}
	pids := map[uint32]bool{}
	for i := 0; i < 20; i++ {
		for _, s := range []struct {
			c      *pgx.Conn
			tenant string
		}{{ca, a}, {cb, b}} {
			if _, err := s.c.Exec(ctx, "INSERT INTO secrets VALUES ($1, $2)", s.tenant, fmt.Sprint(i)); err != nil {
				t.Fatalf("insert as %s: %v", s.tenant, err)
			}
			var mine, others int
			if err := s.c.QueryRow(ctx, "SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id <> $1) FROM secrets", s.tenant).Scan(&mine, &others); err != nil {
				t.Fatal(err)
			}
			if mine != i+1 || others != 0 {
				t.Fatalf("round %d, tenant %s sees %d own rows and %d of others", i, s.tenant, mine, others)
			}
			var pid uint32
			if err := s.c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
	}
	if len(pids) != 1 {
		t.Fatalf("the two tenants used %d server connections; the test needs them to share one", len(pids))
	}
	// The policy also refuses a write for another tenant.
	if _, err := ca.Exec(ctx, "INSERT INTO secrets VALUES ($1, 'x')", b); pgCode(err) != "42501" {
		t.Fatalf("insert of another tenant's row: %v", err)
	}
}
