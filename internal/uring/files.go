//go:build linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RaiseNofileLimit raises the soft RLIMIT_NOFILE to the hard limit (what
// liburing does silently) and returns the resulting soft and hard limits.
// The kernel caps every ring's registered file table at the *soft* limit.
func RaiseNofileLimit() (soft, hard uint64, err error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("uring: getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, rl.Max, fmt.Errorf("uring: raise soft RLIMIT_NOFILE %d to hard %d: %w", rl.Cur, rl.Max, err)
		}
		rl = want
	}
	return rl.Cur, rl.Max, nil
}

func tooManyFiles(n uint32, soft, hard uint64, err error) error {
	return fmt.Errorf("%w: %d slots requested, but a ring's file table is capped by the soft RLIMIT_NOFILE "+
		"(soft %d, hard %d) and by the kernel at %d: use fewer slots per ring and more rings, or raise the hard "+
		"limit (LimitNOFILE= in systemd, `ulimit -Hn` as root, /etc/security/limits.conf): %w",
		ErrTooManyFiles, n, soft, hard, maxFixedFiles, err)
}

// RegisterFilesSparse registers an empty (sparse) file table of n direct
// slots (IORING_REGISTER_FILES2 with IORING_RSRC_REGISTER_SPARSE). It first
// raises the soft RLIMIT_NOFILE to the hard limit; if n is still above it,
// it returns an error matching ErrTooManyFiles and syscall.EMFILE.
func (r *Ring) RegisterFilesSparse(n uint32) error {
	soft, hard, err := RaiseNofileLimit()
	if err != nil {
		return err
	}
	if uint64(n) > soft || n > maxFixedFiles {
		return tooManyFiles(n, soft, hard, syscall.EMFILE)
	}
	if err := r.registerFilesSparse(n); err != nil {
		if errors.Is(err, syscall.EMFILE) {
			return tooManyFiles(n, soft, hard, err)
		}
		return err
	}
	return nil
}

func (r *Ring) registerFilesSparse(n uint32) error {
	reg := rsrcRegister{Nr: n, Flags: rsrcRegisterSparse}
	_, err := sysRegister(r.fd, regRegisterFiles2, unsafe.Pointer(&reg), uint32(unsafe.Sizeof(reg)))
	runtime.KeepAlive(&reg)
	if err != nil {
		return fmt.Errorf("uring: register %d sparse files: %w", n, err)
	}
	return nil
}

// RegisterFiles registers fds as the file table (slot i = fds[i]; -1 leaves
// a slot empty). The same RLIMIT_NOFILE cap applies.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return fmt.Errorf("uring: register files: empty table")
	}
	_, err := sysRegister(r.fd, regRegisterFiles, unsafe.Pointer(&fds[0]), uint32(len(fds)))
	runtime.KeepAlive(fds)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) {
			soft, hard, _ := RaiseNofileLimit()
			return tooManyFiles(uint32(len(fds)), soft, hard, err)
		}
		return fmt.Errorf("uring: register %d files: %w", len(fds), err)
	}
	return nil
}

// RegisterFilesUpdate replaces slots offset..offset+len(fds)-1 with fds
// (-1 empties a slot, FilesSkip leaves it). The kernel takes its own
// reference: the caller may close a regular fd it installed. It returns the
// number of slots updated.
func (r *Ring) RegisterFilesUpdate(offset uint32, fds []int32) (int, error) {
	if len(fds) == 0 {
		return 0, nil
	}
	up := filesUpdate{Offset: offset, Fds: uint64(uintptr(unsafe.Pointer(&fds[0])))}
	n, err := sysRegister(r.fd, regFilesUpdate, unsafe.Pointer(&up), uint32(len(fds)))
	runtime.KeepAlive(fds)
	runtime.KeepAlive(&up)
	if err != nil {
		return n, fmt.Errorf("uring: update files at slot %d (+%d): %w", offset, len(fds), err)
	}
	return n, nil
}

// UnregisterFiles drops the file table (closing every direct descriptor).
func (r *Ring) UnregisterFiles() error {
	_, err := sysRegister(r.fd, regUnregisterFiles, nil, 0)
	if err != nil {
		return fmt.Errorf("uring: unregister files: %w", err)
	}
	return nil
}

// RegisterEventfd makes the kernel signal eventfd efd whenever it posts CQEs
// to this ring. One eventfd may be registered on many rings so a thread can
// sleep on all of them with one read/poll; after a wake-up, call GetEvents on
// each ring that may have work (NeedsEnter) before reading its CQEs.
func (r *Ring) RegisterEventfd(efd int) error {
	return r.registerEventfd(efd, regRegisterEventfd)
}

// RegisterEventfdAsync is RegisterEventfd signalling only for completions
// that were not posted inline at submission.
func (r *Ring) RegisterEventfdAsync(efd int) error {
	return r.registerEventfd(efd, regEventfdAsync)
}

func (r *Ring) registerEventfd(efd int, op uint32) error {
	fd := int32(efd)
	_, err := sysRegister(r.fd, op, unsafe.Pointer(&fd), 1)
	runtime.KeepAlive(&fd)
	if err != nil {
		return fmt.Errorf("uring: register eventfd %d: %w", efd, err)
	}
	return nil
}

// UnregisterEventfd removes the registered eventfd.
func (r *Ring) UnregisterEventfd() error {
	_, err := sysRegister(r.fd, regUnregisterEventfd, nil, 0)
	if err != nil {
		return fmt.Errorf("uring: unregister eventfd: %w", err)
	}
	return nil
}
