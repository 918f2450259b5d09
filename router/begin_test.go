package router

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

var beginCases = []struct {
	q    string
	want bool
}{
	{"BEGIN", true},
	{"begin;", true},
	{"BEGIN WORK", true},
	{"/* tenant='acme' */ BEGIN TRANSACTION READ ONLY", true},
	{"START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ WRITE", true},
	{"begin isolation level read committed not deferrable", true},
	{"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE;", true},
	{"BEGIN garbage", false},
	{"BEGIN ISOLATION LEVEL nonsense", false},
	{"BEGIN ISOLATION \"level\" serializable", false},
	{"BEGIN READ", false},
	{"BEGIN, READ ONLY", false},
	{"BEGIN; SELECT 1", false},
	{"START", false},
	{"START WORK", false},
	{"BEGIN TRANSACTION WORK", false},
}

func TestWellFormedBegin(t *testing.T) {
	for _, tc := range beginCases {
		if got := wellFormedBegin([]byte(tc.q)); got != tc.want {
			t.Errorf("wellFormedBegin(%q) = %v, want %v", tc.q, got, tc.want)
		}
	}
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{"SET TRANSACTION READ ONLY", true},
		{"set transaction isolation level serializable, deferrable", true},
		{"SET TRANSACTION", false},
		{"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", false},
		{"SET TRANSACTION ISOLATION LEVEL garbage", false},
	} {
		if got := wellFormedSetTransaction([]byte(tc.q)); got != tc.want {
			t.Errorf("wellFormedSetTransaction(%q) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

// TestWellFormedBeginAgreesWithServer runs every case on a shard: what the
// router would defer, the server must accept.
func TestWellFormedBeginAgreesWithServer(t *testing.T) {
	c := direct(t, "s1")
	ctx := testCtx(t)
	for _, tc := range beginCases {
		_, err := c.Exec(ctx, tc.q)
		_, _ = c.Exec(ctx, "ROLLBACK")
		if tc.want && err != nil {
			t.Errorf("%q: the router would defer it, the server says %v", tc.q, err)
		}
	}
}

// FuzzWellFormedBegin checks that whatever the router defers as a BEGIN or
// SET TRANSACTION, PostgreSQL's parser accepts as one statement of that
// kind.
func FuzzWellFormedBegin(f *testing.F) {
	for _, tc := range beginCases {
		f.Add(tc.q)
	}
	f.Add("SET TRANSACTION READ WRITE")
	f.Fuzz(func(t *testing.T, q string) {
		if strings.IndexByte(q, 0) >= 0 {
			return // a protocol string ends at its first NUL
		}
		begin, set := wellFormedBegin([]byte(q)), wellFormedSetTransaction([]byte(q))
		if !begin && !set {
			return
		}
		if begin && set {
			t.Fatalf("%q is both a BEGIN and a SET TRANSACTION", q)
		}
		tree, err := pg_query.Parse(q)
		if err != nil {
			t.Fatalf("%q deferred, but PostgreSQL's parser rejects it: %v", q, err)
		}
		if n := len(tree.Stmts); n != 1 {
			t.Fatalf("%q deferred, but it is %d statements", q, n)
		}
		switch stmt := tree.Stmts[0].Stmt.GetNode().(type) {
		case *pg_query.Node_TransactionStmt:
			want := pg_query.TransactionStmtKind_TRANS_STMT_BEGIN
			if set {
				t.Fatalf("%q deferred as SET TRANSACTION, parsed as %v", q, stmt.TransactionStmt.Kind)
			}
			if k := stmt.TransactionStmt.Kind; k != want && k != pg_query.TransactionStmtKind_TRANS_STMT_START {
				t.Fatalf("%q deferred as BEGIN, parsed as %v", q, k)
			}
		case *pg_query.Node_VariableSetStmt:
			if !set || stmt.VariableSetStmt.Name != "TRANSACTION" {
				t.Fatalf("%q deferred, parsed as SET %s", q, stmt.VariableSetStmt.Name)
			}
		default:
			t.Fatalf("%q deferred, parsed as %T", q, stmt)
		}
	})
}
