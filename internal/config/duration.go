package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// A Duration is written in TOML as
//
//	server_idle_timeout = 600      # integer: seconds
//	server_idle_timeout = 0.25     # float: seconds
//	server_idle_timeout = "250ms"  # string: Go duration (time.ParseDuration)
//	server_idle_timeout = "1.5"    # string holding a number: seconds
//
// Load handles all forms. For decoding with go-toml directly, use a Decoder
// with EnableUnmarshalerInterface (then UnmarshalTOML is called); without it
// go-toml stores a TOML integer into the underlying int64 as nanoseconds.

// String formats the duration like time.Duration ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes the duration as a Go duration string, which
// UnmarshalText and UnmarshalTOML read back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes a Go duration string ("250ms", "2m") or a number of
// seconds ("15", "0.5").
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDurationString(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalTOML implements go-toml's unstable.Unmarshaler: data is the raw
// TOML value (an integer, a float or a string).
func (d *Duration) UnmarshalTOML(data []byte) error {
	var doc struct {
		V any `toml:"v"`
	}
	if err := toml.Unmarshal(append([]byte("v = "), data...), &doc); err != nil {
		return fmt.Errorf("invalid duration %q", data)
	}
	v, err := durationFromValue(doc.V)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// durationFromValue converts a decoded TOML value (int64, float64 or string)
// into a Duration.
func durationFromValue(v any) (Duration, error) {
	switch x := v.(type) {
	case int64:
		if x > math.MaxInt64/int64(time.Second) || x < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("%d seconds is too large", x)
		}
		return Duration(x * int64(time.Second)), nil
	case float64:
		return secondsToDuration(x)
	case string:
		return parseDurationString(x)
	default:
		return 0, errors.New("must be a number of seconds or a duration string like \"250ms\"")
	}
}

func secondsToDuration(s float64) (Duration, error) {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("%v is not a valid number of seconds", s)
	}
	ns := s * float64(time.Second)
	// float64(math.MaxInt64) rounds up to 2^63, so >= rejects it.
	if ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
		return 0, fmt.Errorf("%v seconds is too large", s)
	}
	return Duration(math.Round(ns)), nil
}

func parseDurationString(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New(`empty duration: use a number of seconds or a string like "250ms"`)
	}
	if isNumeric(t) {
		f, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
		if err == nil {
			return secondsToDuration(f)
		}
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s seconds is too large", t)
		}
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use seconds or a Go duration such as \"250ms\", \"2m\")", s)
	}
	return Duration(v), nil
}

// isNumeric reports whether s looks like a plain decimal number (digits,
// sign, '.', exponent, '_'), as opposed to a Go duration with units.
func isNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '_') {
			return false
		}
	}
	return true
}
