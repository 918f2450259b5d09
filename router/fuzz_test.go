package router

import "testing"

func FuzzCommentTenant(f *testing.F) {
	for _, s := range []string{"SELECT 1 /* tenant='acme' */", "/*tenant='a%2',x='y'*/", "'/*", "$a$ /* $a", "E'\\'", "/* /* */"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		tenant, found := commentTenant(q)
		if !found && tenant != "" {
			t.Fatalf("tenant %q without found", tenant)
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"SET shardline.tenant = 'a'", "RESET ALL", "SHOW shardline.shard", "set local x to 1;", "SELECT set_config('shardline.tenant','x',false)", "SET \"", "SET x = E'\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		info := classify(q)
		if info.kind == stmtRouterSet && info.name == "" {
			t.Fatalf("router SET without a name for %q", q)
		}
		_ = isMulti(q)
		_ = mentionsBinding(q)
	})
}

func FuzzParseStartup(f *testing.F) {
	f.Add([]byte("user\x00bob\x00database\x00app\x00options\x00-c shardline.tenant=t1\x00\x00"))
	f.Add([]byte("user\x00\x00"))
	f.Add([]byte("options\x00-c\\ x=1 --a=b\x00user\x00u\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := parseStartup(string(body))
		if err == nil && st.user == "" {
			t.Fatal("accepted a startup without user")
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	f.Add(`-c shardline.tenant=acme --search-path=a\ b`)
	f.Add(`-c`)
	f.Fuzz(func(t *testing.T, s string) {
		kvs, err := parseOptions(s)
		if err != nil {
			return
		}
		for _, kv := range kvs {
			if kv[0] == "" {
				t.Fatalf("empty name from %q", s)
			}
		}
	})
}
