package router

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/shardline/shardline"
)

// FuzzCommentTenant checks commentTenant against what it promises its
// callers. It does not validate the tenant it finds (route does, and fails
// the statement with an error): so a comment that names a tenant must be
// found with exactly the value written, valid or not, else a statement meant
// for one tenant would run for the session's.
//
// q is any statement text; sql is any text, made plain (no quotes, dollars,
// comment markers) to wrap a built comment; id is any text, a tenant value.
func FuzzCommentTenant(f *testing.F) {
	for _, s := range []struct{ q, sql, id string }{
		{"SELECT 1 /* tenant='acme' */", "SELECT 1", "acme"},
		{"/*tenant='a%2',x='y'*/", "SELECT * FROM t WHERE id = 1", "a%2Fb"},
		{"'/*", "UPDATE t SET n = n + 1", "org:42@eu"},
		{"$a$ /* $a", "", "x"},
		{"E'\\'", "INSERT INTO t VALUES (1)", "has space"},
		{"/* /* */", "SELECT 1\nFROM t", ""},
		{"SELECT * FROM t /*action='list',controller='items',tenant='a%2Fb',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/", "SELECT a, b FROM items WHERE x > 2 ORDER BY a LIMIT 10", "t0001"},
		{"/*db_driver='pgx',tenant='acme',route='%2Fitems%2F%3Aid'*/ SELECT 1", "SELECT 1", "acme"},
		{"SELECT '/* tenant=''evil'' */' /* tenant='good' */", "SELECT 1", "good"},
		{"SELECT $$ /* tenant='evil' */ $$, $q$ $$ /* tenant='evil' */ $q$", "SELECT 1", "evil"},
		{"SELECT \"/* tenant='evil' */\" FROM t", "SELECT 1", "x"},
		{"SELECT E'\\' /* tenant=''evil'' */' -- /* tenant='evil' */\n", "SELECT 1", "x"},
		{"SELECT 1 /* outer /* tenant='inner' */ */", "SELECT 1", "x"},
		{"SELECT 1 /* tenant='' */", "SELECT 1", "a'b"},
		{"SELECT 1 /* Tenant='acme' */ /* tenant=bare */", "SELECT 1", "-_.:@"},
	} {
		f.Add([]byte(s.q), s.sql, s.id)
	}
	f.Fuzz(func(t *testing.T, q []byte, sql, id string) {
		tenant, found := commentTenant(q)
		if !found && tenant != "" {
			t.Fatalf("commentTenant(%q) = %q without found", q, tenant)
		}
		// Without the key there is nothing to find.
		if found && (!bytes.Contains(q, []byte("tenant")) || !bytes.Contains(q, []byte("/*")) || !bytes.Contains(q, []byte("*/"))) {
			t.Fatalf("commentTenant(%q) found %q without a comment naming tenant", q, tenant)
		}
		checkCommentsAsPostgres(t, q)

		plain := plainSQL(sql)
		valid := validTenantFrom(id)
		if err := shardline.ValidateTenant(valid); err != nil {
			t.Fatalf("validTenantFrom(%q) = %q: %v", id, valid, err)
		}
		for _, c := range []struct{ comment, want string }{
			// A valid id as sqlcommenter writes it (URL-encoded), alone and
			// among other keys.
			{"/* tenant='" + sqlcommenterEncode(valid) + "' */", valid},
			{"/*action='list',tenant='" + sqlcommenterEncode(valid) + "',traceparent='00-01-02-01'*/", valid},
			// Any value at all, URL-encoded: found, so that route can refuse
			// an invalid one rather than fall back to the session's tenant.
			{"/*tenant='" + sqlcommenterEncode(id) + "'*/", id},
		} {
			checkCommentPlaced(t, plain, c.comment, c.want)
		}
		// A valid id written as is. Values are URL-decoded (sqlcommenter
		// encodes them), so an id with '%' in it must be written encoded:
		// /* tenant='a%41' */ names tenant "aA".
		if !strings.Contains(valid, "%") {
			checkCommentPlaced(t, plain, "/* tenant='"+valid+"' */", valid)
		}
	})
}

// checkCommentPlaced checks that comment is found, with value want, before,
// inside (at its first word boundaries) and after the plain SQL text sql.
func checkCommentPlaced(t *testing.T, sql, comment, want string) {
	t.Helper()
	qs := []string{comment + sql, comment + " " + sql, sql + comment, sql + " " + comment, sql + "\n" + comment + "\n"}
	for i, n := 0, 0; i < len(sql) && n < 16; i++ { // the first word boundaries
		if sql[i] == ' ' || sql[i] == '\n' {
			qs = append(qs, sql[:i]+" "+comment+" "+sql[i:])
			n++
		}
	}
	for _, q := range qs {
		if got, found := commentTenant([]byte(q)); !found || got != want {
			t.Fatalf("commentTenant(%q) = %q, %v; want %q, true", q, got, found, want)
		}
	}
}

// checkCommentsAsPostgres checks that the comments forEachComment reports
// in q are those PostgreSQL's own lexer sees (with standard_conforming_strings
// on), for every q the lexer accepts: a comment inside a literal is never
// taken for one, nor one outside missed.
func checkCommentsAsPostgres(t *testing.T, q []byte) {
	t.Helper()
	if bytes.IndexByte(q, 0) >= 0 {
		return // a protocol string ends at its first NUL
	}
	scan, err := pg_query.Scan(string(q))
	if err != nil {
		return // not a statement PostgreSQL would lex (unterminated literal, comment...)
	}
	var want []string
	for _, tok := range scan.Tokens {
		if tok.Token == pg_query.Token_C_COMMENT {
			want = append(want, string(q[tok.Start+2:tok.End-2]))
		}
	}
	var got []string
	forEachComment(q, func(body []byte) bool {
		got = append(got, string(body))
		return true
	})
	if !slices.Equal(got, want) {
		t.Fatalf("comments of %q: router sees %q, PostgreSQL %q", q, got, want)
	}
}

// plainSQL drops from s the bytes that could open a literal or a comment.
func plainSQL(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("'\"$/*-\\\x00", r) {
			return -1
		}
		return r
	}, s)
}

// validTenantFrom keeps the bytes of s a tenant id may hold, at most
// MaxTenantLen of them ("t" if none).
func validTenantFrom(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < shardline.MaxTenantLen; i++ {
		if shardline.ValidateTenant(s[i:i+1]) == nil {
			b.WriteByte(s[i])
		}
	}
	if b.Len() == 0 {
		return "t"
	}
	return b.String()
}

// sqlcommenterEncode URL-encodes s as sqlcommenter does its values: every
// byte but letters, digits and -_.~ as %XX.
func sqlcommenterEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// FuzzClassify checks that classify recognises the router's own SET
// statements however they are written, with the value they set, and lets
// no statement that writes the tenant binding through to the server.
func FuzzClassify(f *testing.F) {
	for _, s := range []struct{ q, v string }{
		{"SET shardline.tenant = 'a'", "acme"},
		{"RESET ALL", "a'b"},
		{"SHOW shardline.shard", "a;b"},
		{"set local x to 1;", "/* tenant='x' */"},
		{"SELECT set_config('shardline.tenant','x',false)", ""},
		{"SET \"", "\\"},
		{"SET x = E'\\", "é"},
		{"SELECT 1; SET shardline.tenant = 'x'", "x"},
		{"BEGIN; SELECT set_config('shardline.tenant', 'x', false); COMMIT", "x"},
		{"SET search_path = '; SET shardline.tenant = x'", "x"},
		{"SELECT $$; SET shardline.tenant = 'x'$$", "x"},
	} {
		f.Add([]byte(s.q), s.v)
	}
	f.Fuzz(func(t *testing.T, q []byte, value string) {
		info := classify(q)
		if info.kind == stmtRouterSet && info.name == "" {
			t.Fatalf("router SET without a name for %q", q)
		}
		if (info.kind == stmtRouterSet || info.kind == stmtRouterReset) && info.multi {
			t.Fatalf("%q: a router SET or RESET in a multi-statement query, classified %d", q, info.kind)
		}
		_ = isMulti(q)
		_ = mentionsBinding(q)
		checkMultiBinding(t, q)

		if strings.IndexByte(value, 0) >= 0 {
			return
		}
		lit := quoteLiteral(value)
		for _, s := range []string{
			"SET shardline.tenant = " + lit,
			"set shardline.tenant to " + lit,
			"SET SESSION SHARDLINE.TENANT TO " + lit + ";",
			"  /* c */ SET\n\tshardline.tenant=" + lit + " ; ",
		} {
			info := classify([]byte(s))
			if info.kind != stmtRouterSet || info.name != "shardline.tenant" || info.value != value || info.isDefault {
				t.Fatalf("classify(%q) = kind %d name %q value %q default %v; want a router SET of shardline.tenant to %q",
					s, info.kind, info.name, info.value, info.isDefault, value)
			}
		}
		// Whatever statement comes first, a binding write after it is
		// refused.
		if plain := plainSQL(string(q)); !strings.Contains(plain, ";") {
			for _, w := range []string{"SET shardline.tenant = " + lit, "SELECT set_config('shardline.tenant', " + lit + ", false)"} {
				s := plain + "; " + w
				if info := classify([]byte(s)); info.kind != stmtForbidden {
					t.Fatalf("classify(%q) = kind %d; want stmtForbidden", s, info.kind)
				}
			}
		}
	})
}

// checkMultiBinding checks, for a q that PostgreSQL splits into several
// statements, that if one of them alone would be refused or answered by the
// router (it writes the binding), q as a whole is refused.
func checkMultiBinding(t *testing.T, q []byte) {
	t.Helper()
	if bytes.IndexByte(q, 0) >= 0 {
		return
	}
	stmts, err := pg_query.SplitWithScanner(string(q), true)
	if err != nil || len(stmts) < 2 {
		return
	}
	for _, s := range stmts {
		switch classify([]byte(s)).kind {
		case stmtForbidden, stmtRouterSet, stmtRouterReset:
			if info := classify(q); info.kind != stmtForbidden {
				t.Fatalf("classify(%q) = kind %d, but its statement %q writes the binding", q, info.kind, s)
			}
			return
		}
	}
}

// FuzzParseStartup checks that an accepted startup packet has a user and a
// database, and that the packet rebuilt from what was parsed (the settings
// in options) parses to the same.
func FuzzParseStartup(f *testing.F) {
	f.Add([]byte("user\x00bob\x00database\x00app\x00options\x00-c shardline.tenant=t1\x00\x00"))
	f.Add([]byte("user\x00\x00"))
	f.Add([]byte("options\x00-c\\ x=1 --a=b\x00user\x00u\x00\x00"))
	f.Add([]byte("user\x00u\x00application_name\x00psql\x00client_encoding\x00UTF8\x00_pq_.x\x00y\x00replication\x00false\x00\x00"))
	f.Add([]byte("user\x00u\x00options\x00-c user=mallory --database=x -c a=b\\ c\\\\\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := parseStartup(string(body))
		if err != nil {
			return
		}
		if st.user == "" || st.database == "" {
			t.Fatalf("parseStartup(%q): user %q, database %q", body, st.user, st.database)
		}
		for _, kv := range st.params {
			if !validSettingName(kv[0]) {
				t.Fatalf("parseStartup(%q): setting name %q", body, kv[0])
			}
		}
		// Rebuilt with every setting in options, so that one named like a
		// startup key (user, options) stays a setting.
		var b strings.Builder
		b.WriteString("user\x00" + st.user + "\x00database\x00" + st.database + "\x00")
		for _, k := range st.unsupported {
			b.WriteString(k + "\x00\x00")
		}
		b.WriteString("options\x00" + formatOptions(st.params) + "\x00\x00")
		again, err := parseStartup(b.String())
		if err != nil {
			t.Fatalf("parseStartup(%q) accepted; rebuilt as %q: %v", body, b.String(), err)
		}
		// Options fold names as GUC names are (plain parameters keep theirs).
		want := make([][2]string, len(st.params))
		for i, kv := range st.params {
			want[i] = [2]string{strings.ReplaceAll(strings.ToLower(kv[0]), "-", "_"), kv[1]}
		}
		if again.user != st.user || again.database != st.database || !slices.Equal(again.params, want) || !slices.Equal(again.unsupported, st.unsupported) {
			t.Fatalf("parseStartup(%q) = %+v; rebuilt as %q: %+v", body, st, b.String(), again)
		}
	})
}

// FuzzParseOptions checks that parsed names are valid lower-case setting
// names, and that options rebuilt from the parsed settings, in each of
// libpq's forms and with values escaped, parse back to the same settings.
func FuzzParseOptions(f *testing.F) {
	f.Add(`-c shardline.tenant=acme --search-path=a\ b`)
	f.Add(`-c`)
	f.Add(`-c a=x\\y -c b=b\ -cC=\ lead --d-e=1=2 -c f=`)
	f.Add("  -c\ta=1 \r\n -c b=tab\\\there")
	f.Fuzz(func(t *testing.T, s string) {
		kvs, err := parseOptions(s)
		if err != nil {
			return
		}
		for _, kv := range kvs {
			if !validSettingName(kv[0]) || kv[0] != strings.ToLower(kv[0]) || strings.Contains(kv[0], "-") {
				t.Fatalf("parseOptions(%q): name %q", s, kv[0])
			}
		}
		rebuilt := formatOptions(kvs)
		again, err := parseOptions(rebuilt)
		if err != nil || !slices.Equal(again, kvs) {
			t.Fatalf("parseOptions(%q) = %q; rebuilt as %q: %q, %v", s, kvs, rebuilt, again, err)
		}
	})
}

// formatOptions writes settings as a libpq options string, taking turns
// between "-c name=value", "-cname=value" and "--name=value", with white
// space and backslashes in values escaped.
func formatOptions(kvs [][2]string) string {
	var b strings.Builder
	for i, kv := range kvs {
		b.WriteString([]string{" -c ", " -c", " --"}[i%3])
		b.WriteString(kv[0] + "=")
		for j := 0; j < len(kv[1]); j++ {
			if strings.IndexByte(" \t\r\n\\", kv[1][j]) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(kv[1][j])
		}
	}
	return b.String()
}

// FuzzIndexFold checks the anchored search of indexFold against a plain
// scan of the ASCII-lower-cased text, for the needles the router uses.
func FuzzIndexFold(f *testing.F) {
	f.Add([]byte("SELECT Set_Config('work_mem', '1MB', false)"), 0)
	f.Add([]byte("set shardline.tenant = 'a'; SHARDLINE.x"), 3)
	f.Add([]byte("DECLARE c CURSOR WITH HOLD FOR SELECT pg_advisory_lock(1)"), 0)
	f.Fuzz(func(t *testing.T, q []byte, from int) {
		if from < 0 || from > len(q) {
			return
		}
		lower := bytes.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, q)
		for _, needle := range []string{"set_config", "shardline.", "advisory_", "with hold", "select"} {
			want := -1
			if len(lower) == len(q) { // no invalid UTF-8 rewritten by Map
				if i := bytes.Index(lower[from:], []byte(needle)); i >= 0 {
					want = from + i
				}
			} else {
				continue
			}
			if got := nextFold(q, from, needle); got != want {
				t.Fatalf("nextFold(%q, %d, %q) = %d, want %d", q, from, needle, got, want)
			}
		}
	})
}
