package shardline

import "testing"

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/0", "0/3000060", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", s, err)
		}
		if l.String() != s {
			t.Errorf("round trip %q -> %q", s, l.String())
		}
	}
	if a, _ := ParseLSN("1/0"); a <= LSN(0xffffffff) {
		t.Error("1/0 must order after 0/FFFFFFFF")
	}
	for _, bad := range []string{"", "0", "/1", "1/", "g/1", "123456789/0", "0/-1"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tok, err := ParseToken("s2:0/3000060")
	if err != nil || tok.Shard != "s2" || tok.String() != "s2:0/3000060" {
		t.Fatalf("ParseToken = %+v, %v", tok, err)
	}
	if z, err := ParseToken(""); err != nil || z != (Token{}) || z.String() != "" {
		t.Fatalf("empty token = %+v, %v", z, err)
	}
	for _, bad := range []string{"s1", "S1:0/1", "s1:zz", ":0/1"} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("s1:0/3000060")
	f.Add("x:1/")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err == nil && s != "" && tok.String() == "" {
			t.Fatalf("accepted %q as the zero token", s)
		}
	})
}
