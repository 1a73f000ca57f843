// Package config loads, defaults and validates poolmgr's TOML configuration
// file (see docs/config.md for every key).
//
// Load reads a file, applies the defaults of Default for absent keys, and
// validates the result. It reports every problem at once, each as
// "file:line: key: what is wrong", in a *ValidationError. Warnings lists the
// start-up warnings of a valid Config (settings accepted but not active yet,
// trust authentication on a public address).
//
// Durations are written as seconds (integer or float) or as Go duration
// strings ("250ms", "2m"); keys ending in _ms are integers of milliseconds.
package config
