package router

import (
	"testing"
)

func TestCommentTenant(t *testing.T) {
	cases := []struct {
		q      string
		tenant string
		found  bool
	}{
		{"SELECT 1 /* tenant='acme' */", "acme", true},
		{"/*tenant='acme',action='list'*/ SELECT 1", "acme", true},
		{"SELECT 1 /*controller='x',tenant='a%2Db'*/", "a-b", true},
		{"SELECT 1 /* tenant=bare */", "bare", true},
		{"SELECT 1", "", false},
		{"SELECT '/* tenant=''evil'' */'", "", false},
		{"SELECT \"/* tenant='evil' */\"", "", false},
		{"SELECT $$ /* tenant='evil' */ $$", "", false},
		{"SELECT $q$ /* tenant='evil' */ $q$ /* tenant='good' */", "good", true},
		{"SELECT 1 -- /* tenant='evil' */\n", "", false},
		{"SELECT E'\\' /* tenant=''evil'' */'", "", false},
		{"SELECT 1 /* unterminated tenant='x'", "", false},
		{"SELECT 1 /* other='x' */ /* tenant='second' */", "second", true},
		{"SELECT $1 /* tenant='p' */", "p", true},
	}
	for _, c := range cases {
		got, found := commentTenant([]byte(c.q))
		if got != c.tenant || found != c.found {
			t.Errorf("commentTenant(%q) = %q, %v; want %q, %v", c.q, got, found, c.tenant, c.found)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		q     string
		kind  stmtKind
		name  string
		value string
	}{
		{"SELECT 1", stmtOther, "", ""},
		{"SET shardline.tenant = 'acme'", stmtRouterSet, "shardline.tenant", "acme"},
		{"set SHARDLINE.TENANT to acme;", stmtRouterSet, "shardline.tenant", "acme"},
		{"SET SESSION shardline.tenant = 'a''b'", stmtRouterSet, "shardline.tenant", "a'b"},
		{"  /* c */ SET shardline.tenant = DEFAULT", stmtRouterSet, "shardline.tenant", ""},
		{"RESET shardline.tenant", stmtRouterReset, "shardline.tenant", ""},
		{"SHOW shardline.shard", stmtRouterShow, "shardline.shard", ""},
		{"SET LOCAL shardline.tenant = 'x'", stmtForbidden, "shardline.tenant", ""},
		{"SET shardline.tenant = 'x'; SELECT 1", stmtForbidden, "shardline.tenant", "x"},
		{"SELECT 1; SET shardline.tenant = 'x'", stmtForbidden, "", ""},
		{"SELECT set_config('shardline.tenant', 'x', false)", stmtForbidden, "", ""},
		{"SELECT current_setting('shardline.tenant')", stmtOther, "", ""},
		{"SET search_path TO app, public", stmtSessionSet, "search_path", ""},
		{"SET TIME ZONE 'UTC'", stmtSessionSet, "timezone", ""},
		{"SET LOCAL search_path TO x", stmtOther, "", ""},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", stmtOther, "", ""},
		{"RESET search_path", stmtSessionReset, "search_path", ""},
		{"RESET ALL", stmtResetAll, "", ""},
		{"DISCARD ALL", stmtDiscardAll, "", ""},
		{"BEGIN", stmtBegin, "", ""},
		{"start transaction isolation level serializable", stmtBegin, "", ""},
		{"SET a = 1; SET b = 2", stmtOther, "", ""},
		{"SET a = 1;", stmtSessionSet, "a", ""},
	}
	for _, c := range cases {
		info := classify([]byte(c.q))
		if info.kind != c.kind || info.name != c.name || info.value != c.value {
			t.Errorf("classify(%q) = kind %d name %q value %q; want kind %d name %q value %q",
				c.q, info.kind, info.name, info.value, c.kind, c.name, c.value)
		}
	}
}

func TestParseOptions(t *testing.T) {
	got, err := parseOptions(`-c shardline.tenant=acme -csearch_path=a,b --application-name=my\ app`)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"shardline.tenant", "acme"}, {"search_path", "a,b"}, {"application_name", "my app"}}
	if len(got) != len(want) {
		t.Fatalf("parseOptions = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("setting %d = %v, want %v", i, got[i], want[i])
		}
	}
	for in, want := range map[string]string{
		`-c a=x\\y`:      `x\y`, // an escaped backslash
		`-c a=b\`:        `b\`,  // a last backslash is itself
		"  -c\ta=1 \r\n": "1",
		`-c a=\ lead`:    " lead",
		`-ca=\x\=y`:      "x=y",
	} {
		got, err := parseOptions(in)
		if err != nil || len(got) != 1 || got[0] != [2]string{"a", want} {
			t.Errorf("parseOptions(%q) = %q, %v; want a = %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"-c", "-c noequals", "-x foo", "--=v"} {
		if _, err := parseOptions(bad); err == nil {
			t.Errorf("parseOptions(%q) succeeded, want error", bad)
		}
	}
}

func TestParseStartup(t *testing.T) {
	body := "user\x00bob\x00database\x00app\x00options\x00-c shardline.tenant=t1\x00application_name\x00psql\x00\x00"
	st, err := parseStartup(body)
	if err != nil {
		t.Fatal(err)
	}
	if st.user != "bob" || st.database != "app" || len(st.params) != 2 || st.params[1] != [2]string{"shardline.tenant", "t1"} {
		t.Fatalf("parseStartup = %+v", st)
	}
	if _, err := parseStartup("database\x00app\x00\x00"); err == nil {
		t.Error("startup without user accepted")
	}
	if _, err := parseStartup("user\x00bob"); err == nil {
		t.Error("unterminated startup accepted")
	}
}

func TestIsMulti(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                 false,
		"SELECT 1;":                false,
		"SELECT 1; ;  ":            false,
		"SELECT 1; SELECT 2":       true,
		"SELECT ';x'":              false,
		"SELECT 1 -- ; x\n":        false,
		"SELECT $$;x$$":            false,
		"SELECT 1; /* c */":        false,
		"SELECT 1; /* c */ SELECT": true,
	} {
		if got := isMulti([]byte(q)); got != want {
			t.Errorf("isMulti(%q) = %v, want %v", q, got, want)
		}
	}
}

func TestTableCheck(t *testing.T) {
	c := newTableCheck(4)
	for q, any := range map[string]bool{
		"SELECT version()":                           true,
		"SELECT current_schema()":                    true,
		"SHOW standard_conforming_strings":           true,
		"SELECT typname FROM pg_type WHERE oid = 23": true,
		"SELECT * FROM pg_catalog.pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace": true,
		"SELECT table_name FROM information_schema.tables":                                  true,
		"WITH x AS (SELECT 1) SELECT * FROM x":                                              true,
		"SELECT * FROM accounts":                                                            false,
		"INSERT INTO public.orders VALUES (1)":                                              false,
		"SELECT * FROM pg_class, accounts":                                                  false,
		"SELEC broken":                                                                      true,
		"SET application_name = 'x'":                                                        true,
		"BEGIN":                                                                             true,
	} {
		if got := c.check(q); got.anyShard != any {
			t.Errorf("check(%q) = %+v, want anyShard %v", q, got, any)
		}
	}
	if len(c.cache) > 4 {
		t.Errorf("cache holds %d entries, bound is 4", len(c.cache))
	}
}

func TestPinsSession(t *testing.T) {
	for q, want := range map[string]bool{
		"LISTEN jobs":                           true,
		"listen \"x\"":                          true,
		"CREATE TEMP TABLE x (a int)":           true,
		"create local temporary table x()":      true,
		"CREATE TABLE x (a int)":                false,
		"SELECT pg_advisory_lock(1)":            true,
		"SELECT pg_try_advisory_lock(1)":        true,
		"SELECT pg_advisory_xact_lock(1)":       false,
		"PREPARE p AS SELECT 1":                 true,
		"DECLARE c CURSOR WITH HOLD FOR SELECT": true,
		"DECLARE c CURSOR FOR SELECT 1":         false,
		"SELECT 1":                              false,
	} {
		if got := classify([]byte(q)).pins; got != want {
			t.Errorf("pins(%q) = %v, want %v", q, got, want)
		}
	}
}
