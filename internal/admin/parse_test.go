package admin

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Command
	}{
		{"SHOW POOLS", []Command{{Verb: "SHOW", What: "POOLS", Text: "SHOW POOLS"}}},
		{"  show   pools ;  ", []Command{{Verb: "SHOW", What: "POOLS", Text: "show   pools"}}},
		{"Show Stats_Totals;", []Command{{Verb: "SHOW", What: "STATS_TOTALS", Text: "Show Stats_Totals"}}},
		{"pause", []Command{{Verb: "PAUSE", Text: "pause"}}},
		{"PAUSE App", []Command{{Verb: "PAUSE", Args: []string{"app"}, Text: "PAUSE App"}}},
		{`KILL "My DB"`, []Command{{Verb: "KILL", Args: []string{"My DB"}, Text: `KILL "My DB"`}}},
		{`kill "a""b"`, []Command{{Verb: "KILL", Args: []string{`a"b`}, Text: `kill "a""b"`}}},
		{"DRAIN 127.0.0.1:20001", []Command{{Verb: "DRAIN", Args: []string{"127.0.0.1:20001"}, Text: "DRAIN 127.0.0.1:20001"}}},
		{"DRAIN [::1]:5432", []Command{{Verb: "DRAIN", Args: []string{"[::1]:5432"}, Text: "DRAIN [::1]:5432"}}},
		{"SET extra_float_digits = 3", []Command{{Verb: "SET", Args: []string{"extra_float_digits", "=", "3"}, Text: "SET extra_float_digits = 3"}}},
		{"SET application_name TO 'a;b'", []Command{{Verb: "SET", Args: []string{"application_name", "to", "a;b"}, Text: "SET application_name TO 'a;b'"}}},
		{"SHOW POOLS; SHOW VERSION;", []Command{{Verb: "SHOW", What: "POOLS", Text: "SHOW POOLS"}, {Verb: "SHOW", What: "VERSION", Text: "SHOW VERSION"}}},
		{"SHOW POOLS -- a comment", []Command{{Verb: "SHOW", What: "POOLS", Text: "SHOW POOLS -- a comment"}}},
		{"SHUTDOWN WAIT_FOR_CLIENTS", []Command{{Verb: "SHUTDOWN", Args: []string{"wait_for_clients"}, Text: "SHUTDOWN WAIT_FOR_CLIENTS"}}},
		{"", nil},
		{" ; ;", nil},
		{"-- only a comment", nil},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) =\n%#v\nwant\n%#v", tc.in, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"SHOW", "show ;", `KILL "unterminated`, "KILL 'x", "SHOW POOLS (", `"SHOW" POOLS`, "PAUSE $1"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %#v, want an error", in, got)
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Errorf("Parse(%q): %T %v, want *SyntaxError", in, err, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"SHOW POOLS", "KILL \"x\"", "SET a = 'b'", "PAUSE; RESUME", "-- c\nSHOW HELP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmds, err := Parse(s)
		if err != nil {
			return
		}
		for _, c := range cmds {
			if c.Verb == "" {
				t.Fatalf("Parse(%q): empty verb in %#v", s, cmds)
			}
			if c.Verb == "SHOW" && c.What == "" {
				t.Fatalf("Parse(%q): SHOW without subject", s)
			}
		}
	})
}
