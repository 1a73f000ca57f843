package auth

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseUserlist(t *testing.T) {
	sc := rfcSecret(t).String()
	in := "; PgBouncer userlist\n" +
		"# another comment\n" +
		"\n" +
		"   \t\n" +
		`"app" "app"` + "\n" +
		`  "md5user" "` + MD5Hash("md5user", "pw") + `"` + "\r\n" +
		`"scram"	"` + sc + `"  extra fields are ignored` + "\n" +
		`"quo""te" "pa""ss""""word"` + "\n" +
		`"empty" ""` + "\n" +
		`"spa ce" "with space"` + "\n" +
		`"app" "second wins"` // no final newline
	users, err := ParseUserlist(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Secret{
		"app":     {Kind: SecretPlain, Plain: "second wins"},
		"md5user": {Kind: SecretMD5, MD5: MD5Hash("md5user", "pw")},
		"quo\"te": {Kind: SecretPlain, Plain: `pa"ss""word`},
		"empty":   {Kind: SecretPlain, Plain: ""},
		"spa ce":  {Kind: SecretPlain, Plain: "with space"},
	}
	if len(users) != len(want)+1 {
		t.Fatalf("got %d users: %v", len(users), users)
	}
	for u, w := range want {
		if got, ok := users[u]; !ok || got.Kind != w.Kind || got.Plain != w.Plain || got.MD5 != w.MD5 {
			t.Errorf("user %q: got %#v (plain %q md5 %q), want plain %q md5 %q", u, got, got.Plain, got.MD5, w.Plain, w.MD5)
		}
	}
	if s := users["scram"]; s.Kind != SecretScram || s.Scram.String() != sc {
		t.Errorf("scram user: %v", s)
	}

	if users, err := ParseUserlist(strings.NewReader("")); err != nil || len(users) != 0 {
		t.Fatalf("empty file: %v %v", users, err)
	}
}

func TestParseUserlistErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		line int
		msg  string
	}{
		{"app app\n", 1, "expected a quoted user name"},
		{"\n\n\"app\" app\n", 3, "expected a quoted password"},
		{"\"app\"\n", 1, "expected a quoted password"},
		{"; c\n\"app\n\"x\"", 2, "unterminated quoted user name"},
		{"\"app\" \"pw\n", 1, "unterminated quoted password"},
		{"\"a\" \"b\"\n\"app\" \"p\"\"\n", 2, "unterminated quoted password"},
		{"\"\" \"pw\"\n", 1, "empty user name"},
		{"\"a\x00b\" \"pw\"\n", 1, "NUL byte in user name"},
		{"\"ab\" \"p\x00w\"\n", 1, "NUL byte in password"},
		{"\"u\" \"SCRAM-SHA-256$4096:abc$def:ghi\"\n", 1, "malformed SCRAM-SHA-256 secret"},
	} {
		_, err := ParseUserlist(strings.NewReader(tc.in))
		var ue *UserlistError
		if !errors.As(err, &ue) || ue.Line != tc.line || !strings.Contains(ue.Msg, tc.msg) {
			t.Errorf("%q: got %v, want line %d: %s", tc.in, err, tc.line, tc.msg)
			continue
		}
		if !strings.HasPrefix(err.Error(), "line ") {
			t.Errorf("error format: %v", err)
		}
	}
	if _, err := ParseUserlist(iotest.ErrReader(errors.New("boom"))); err == nil || err.Error() != "boom" {
		t.Errorf("reader error: %v", err)
	}
}
