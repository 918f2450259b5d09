package router

import (
	"fmt"
	"testing"
)

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

// TestRollbackUndoesTheBinding binds a tenant inside a transaction that
// began without one, then rolls back: the rollback undoes the server's
// SET, so the next transaction of that tenant on the same server
// connection must bind it again.
func TestRollbackUndoesTheBinding(t *testing.T) {
	needCluster(t)
	ctx := testCtx(t)
	// A tenant on the shard where statements without a tenant go.
	home := anyShard(env.watcher.Current())
	tenant := ""
	for i := 0; tenant == ""; i++ {
		if name := fmt.Sprintf("rb%d", i); shardOf(t, name) == home {
			tenant = name
		}
	}
	c := connect(t, "")
	for _, end := range []string{"ROLLBACK", "SELECT 1/0"} {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil { // no tenant: the transaction starts on home
			t.Fatal(err)
		}
		var got string
		q := "SELECT current_setting('shardline.tenant', true) /* tenant='" + tenant + "' */"
		if err := tx.QueryRow(ctx, q).Scan(&got); err != nil || got != tenant {
			t.Fatalf("inside the transaction: %q %v", got, err)
		}
		_, _ = tx.Exec(ctx, end) // ends it: by ROLLBACK, or by an error and then ROLLBACK
		_ = tx.Rollback(ctx)
		for i := 0; i < testPoolSize; i++ { // whichever connection comes next
			if err := c.QueryRow(ctx, q).Scan(&got); err != nil || got != tenant {
				t.Fatalf("after %s, the next transaction of %s runs bound to %q (%v)", end, tenant, got, err)
			}
		}
	}
}

// TestSetTenantRightAfterBegin: SQLAlchemy opens a transaction and then
// sets the tenant of the request, on a pooled connection whose session had
// another tenant: the BEGIN waits for the statement after the SET.
func TestSetTenantRightAfterBegin(t *testing.T) {
	c := connect(t, "")
	ctx := testCtx(t)
	for _, tn := range []string{"sa-a", "sa-b", "sa-a"} {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET shardline.tenant = '"+tn+"'"); err != nil {
			t.Fatalf("SET shardline.tenant = %s right after BEGIN: %v", tn, err)
		}
		var bound string
		if err := tx.QueryRow(ctx, "SELECT current_setting('shardline.tenant')").Scan(&bound); err != nil || bound != tn {
			t.Fatalf("bound %q (%v), want %s", bound, err, tn)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
