package auth_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shardline/shardline/auth"
	"github.com/shardline/shardline/storage/postgres/pgtest"
)

// PostgreSQL's own verifier (pg_authid.rolpassword after CREATE ROLE ...
// PASSWORD with password_encryption scram-sha-256) parses and checks, and
// ComputeVerifier with its salt makes the same string; a verifier of ours
// is one PostgreSQL stores as it is.
func TestVerifierMatchesPostgreSQL(t *testing.T) {
	pg := pgtest.ForTest(t, 1, 0)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pg.Shards()[0].Primary.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const password = "Tr0ub4dor & 3, with=signs"
	if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE scram_theirs LOGIN PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	var theirs string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_theirs'").Scan(&theirs); err != nil {
		t.Fatal(err)
	}
	v, err := auth.ParseVerifier(theirs)
	if err != nil {
		t.Fatalf("ParseVerifier(PostgreSQL's %q): %v", theirs, err)
	}
	if !v.Check(password) {
		t.Fatal("PostgreSQL's verifier does not check the password")
	}
	ours, err := auth.ComputeVerifier(password, v.Salt, v.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if ours.String() != theirs {
		t.Fatalf("ComputeVerifier = %q, PostgreSQL made %q", ours, theirs)
	}

	mine, err := auth.NewVerifier(password, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE scram_ours LOGIN PASSWORD '"+mine.String()+"'"); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_ours'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != mine.String() {
		t.Fatalf("PostgreSQL stored %q for our verifier %q (it did not recognize it as a verifier)", stored, mine)
	}
}
