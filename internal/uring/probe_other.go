//go:build !linux

package uring

import "errors"

// Probe reports that io_uring is unavailable: it exists only on Linux.
func Probe() (ProbeResult, error) {
	err := errors.New("uring: io_uring exists only on Linux; use the fallback engine")
	return ProbeResult{Reason: err.Error(), Disabled: -1, Group: -1, Seccomp: -1}, err
}
