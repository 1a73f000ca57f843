package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestDurationUnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"250ms", 250 * time.Millisecond, ""},
		{"2m", 2 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"15", 15 * time.Second, ""},
		{"0", 0, ""},
		{"0.5", 500 * time.Millisecond, ""},
		{" 3 ", 3 * time.Second, ""},
		{"1_000", 1000 * time.Second, ""},
		{"1e3", 1000 * time.Second, ""},
		{"-1s", -time.Second, ""}, // decodes; validation rejects negatives
		{"", 0, "empty duration"},
		{"soon", 0, `"soon" is not a duration`},
		{"5e", 0, `"5e" is not a duration`},
		{"10 s", 0, "is not a duration"},
		{"1e400", 0, "is too large"},
		{"9999999999999", 0, "is too large"},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("UnmarshalText(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || d.D() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.D(), err, tt.want)
		}
	}
}

func TestDurationUnmarshalTOML(t *testing.T) {
	tests := []struct {
		raw     string
		want    time.Duration
		wantErr string
	}{
		{`600`, 600 * time.Second, ""},
		{`0`, 0, ""},
		{`1.5`, 1500 * time.Millisecond, ""},
		{`1_000`, 1000 * time.Second, ""},
		{`"250ms"`, 250 * time.Millisecond, ""},
		{`'2m'`, 2 * time.Minute, ""},
		{`"15"`, 15 * time.Second, ""},
		{`true`, 0, "must be a number of seconds"},
		{`nan`, 0, "not a valid number of seconds"},
		{`-inf`, 0, "not a valid number of seconds"},
		{`"x"`, 0, "is not a duration"},
		{`[1]`, 0, "must be a number of seconds"},
		{`1 = 2`, 0, "invalid duration"},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalTOML([]byte(tt.raw))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("UnmarshalTOML(%s) error = %v, want %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil || d.D() != tt.want {
			t.Errorf("UnmarshalTOML(%s) = %v, %v; want %v", tt.raw, d.D(), err, tt.want)
		}
	}
}

// With EnableUnmarshalerInterface, go-toml hands every form to UnmarshalTOML.
func TestDurationWithGoTOMLDecoder(t *testing.T) {
	type doc struct {
		T Duration `toml:"t"`
	}
	for in, want := range map[string]time.Duration{
		`t = 600`:     600 * time.Second,
		`t = 0.25`:    250 * time.Millisecond,
		`t = "250ms"`: 250 * time.Millisecond,
		`t = "2m"`:    2 * time.Minute,
	} {
		var d doc
		err := toml.NewDecoder(strings.NewReader(in)).EnableUnmarshalerInterface().Decode(&d)
		if err != nil || d.T.D() != want {
			t.Errorf("Decode(%s) = %v, %v; want %v", in, d.T.D(), err, want)
		}
	}

	// Without it, go-toml stores integers as nanoseconds (documented trap:
	// use Load, or enable the interface).
	var d doc
	if err := toml.Unmarshal([]byte(`t = 600`), &d); err != nil || d.T != 600 {
		t.Errorf("plain toml.Unmarshal(t = 600) = %d, %v; the documented behaviour changed", d.T, err)
	}
	// Strings go through UnmarshalText either way.
	if err := toml.Unmarshal([]byte(`t = "2m"`), &d); err != nil || d.T.D() != 2*time.Minute {
		t.Errorf(`plain toml.Unmarshal(t = "2m") = %v, %v`, d.T.D(), err)
	}
}

func TestDurationMarshalRoundTrip(t *testing.T) {
	type doc struct {
		T Duration `toml:"t"`
	}
	in := doc{T: Duration(90*time.Second + 250*time.Millisecond)}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(in); err != nil {
		t.Fatal(err)
	}
	var out doc
	if err := toml.NewDecoder(&buf).EnableUnmarshalerInterface().Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: %v -> %v", in.T, out.T)
	}
	if got := in.T.String(); got != "1m30.25s" {
		t.Errorf("String() = %q", got)
	}
}
