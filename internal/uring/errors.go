//go:build linux

package uring

import (
	"errors"
	"syscall"
)

// Errors. Kernel results are returned as syscall.Errno values (CQE.Err), so
// errors.Is(err, syscall.ECONNRESET) and the like work directly; the names
// below are aliases for the ones an engine tests for.
var (
	// ErrRingFull: no free SQE; submit what is prepared first.
	ErrRingFull = errors.New("uring: submission queue full: no free SQE (submit pending entries first)")
	// ErrTooManyFiles: a file table larger than RLIMIT_NOFILE allows was
	// requested. The returned error also matches syscall.EMFILE.
	ErrTooManyFiles = errors.New("uring: registered file table too large")

	ErrTimeout   error = syscall.ETIME      // a wait deadline or timeout SQE expired
	ErrCanceled  error = syscall.ECANCELED  // request canceled (cancel, link failure, link timeout)
	ErrNoBuffers error = syscall.ENOBUFS    // provided-buffer group empty (multishot recv ends)
	ErrNotFound  error = syscall.ENOENT     // cancel/timeout-remove found no such request
	ErrAlready   error = syscall.EALREADY   // cancel: request already running
	ErrBadFD     error = syscall.EBADF      // bad fd or empty direct slot
	ErrNoSlots   error = syscall.ENFILE     // kernel slot allocation: file table full
	ErrExists    error = syscall.EEXIST     // SINGLE_ISSUER ring used from another thread (or slot busy)
	ErrOpNotSupp error = syscall.EOPNOTSUPP // operation not supported on this file
)

// IsCanceled reports whether err is ECANCELED.
func IsCanceled(err error) bool { return errors.Is(err, syscall.ECANCELED) }

// IsTimeout reports whether err is ETIME (timeout SQE fired, or a wait
// deadline passed).
func IsTimeout(err error) bool { return errors.Is(err, syscall.ETIME) }

// IsNoBuffers reports whether err is ENOBUFS.
func IsNoBuffers(err error) bool { return errors.Is(err, syscall.ENOBUFS) }

// IsNotFound reports whether err is ENOENT.
func IsNotFound(err error) bool { return errors.Is(err, syscall.ENOENT) }

// IsConnReset reports whether the peer is gone: ECONNRESET, EPIPE or
// ECONNABORTED.
func IsConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}
