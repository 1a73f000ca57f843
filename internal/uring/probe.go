//go:build linux

package uring

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// requiredOps are the opcodes the io_uring engine cannot do without.
var requiredOps = []struct {
	op   uint8
	name string
}{
	{OpAccept, "ACCEPT"},
	{OpRecv, "RECV"},
	{OpSend, "SEND"},
	{OpSendmsg, "SENDMSG"},
	{OpSocket, "SOCKET"},
	{OpConnect, "CONNECT"},
	{OpClose, "CLOSE"},
	{OpTimeout, "TIMEOUT"},
	{OpLinkTimeout, "LINK_TIMEOUT"},
	{OpAsyncCancel, "ASYNC_CANCEL"},
	{OpMsgRing, "MSG_RING"},
	{OpNop, "NOP"},
}

var requiredFeatures = []struct {
	feat uint32
	name string
}{
	{FeatNoDrop, "NODROP"},
	{FeatFastPoll, "FAST_POLL"},
	{FeatExtArg, "EXT_ARG"},
}

// probeEnv is what the diagnosis looks at besides the errno.
type probeEnv struct {
	kernel    string
	disabled  int // kernel.io_uring_disabled, -1 absent
	group     int // kernel.io_uring_group, -1 absent
	seccomp   int // -1 unknown
	container string
	uid       int
	inGroup   bool // the process is in io_uring_group
}

func readIntFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}

func readEnv() probeEnv {
	e := probeEnv{
		disabled: readIntFile("/proc/sys/kernel/io_uring_disabled"),
		group:    readIntFile("/proc/sys/kernel/io_uring_group"),
		seccomp:  -1,
		uid:      os.Geteuid(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		e.kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Seccomp:"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					e.seccomp = n
				}
			}
		}
		f.Close()
	}
	if e.group >= 0 {
		if gids, err := os.Getgroups(); err == nil {
			e.inGroup = slices.Contains(gids, e.group) || os.Getegid() == e.group
		}
	}
	e.container = detectContainer()
	return e
}

func detectContainer() string {
	if _, err := os.Stat("/.dockerenv"); err == nil {
		return "docker"
	}
	if _, err := os.Stat("/run/.containerenv"); err == nil {
		return "podman"
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return "kubernetes"
	}
	if c := os.Getenv("container"); c != "" {
		return c
	}
	if b, err := os.ReadFile("/proc/1/cgroup"); err == nil {
		for _, k := range []string{"docker", "kubepods", "containerd", "libpod", "lxc"} {
			if bytes.Contains(b, []byte(k)) {
				return k
			}
		}
	}
	return ""
}

func seccompAdvice(e probeEnv) string {
	where := ""
	if e.container != "" {
		where = " inside a container (" + e.container + ")"
	}
	return "a seccomp filter is active (Seccomp: 2 in /proc/self/status)" + where +
		" and it blocks the io_uring syscalls: container runtimes deny them by default, e.g. Docker's default " +
		"seccomp profile does not allow io_uring_setup, io_uring_enter or io_uring_register (it answers EPERM or " +
		"ENOSYS). Run with a seccomp profile that allows these three syscalls " +
		"(docker run --security-opt seccomp=/path/profile.json; seccomp=unconfined only for testing), " +
		"or use the fallback engine"
}

// diagnoseSetup turns an io_uring_setup errno into an actionable sentence.
func diagnoseSetup(errno syscall.Errno, e probeEnv) string {
	switch errno {
	case syscall.ENOSYS:
		if e.seccomp == 2 {
			return seccompAdvice(e)
		}
		return fmt.Sprintf("the kernel (%s) does not provide io_uring: it is older than 5.1, built without "+
			"CONFIG_IO_URING, or a sandbox (such as gVisor) does not implement it; use a newer kernel "+
			"(>= 6.1) or the fallback engine", e.kernel)
	case syscall.EPERM:
		switch {
		case e.disabled == 2:
			return "io_uring is disabled system-wide by sysctl kernel.io_uring_disabled=2; " +
				"enable it with `sysctl -w kernel.io_uring_disabled=0` (or =1 plus kernel.io_uring_group), " +
				"or use the fallback engine"
		case e.disabled == 1 && !e.inGroup && e.uid != 0:
			return fmt.Sprintf("sysctl kernel.io_uring_disabled=1 allows io_uring only to members of "+
				"kernel.io_uring_group (gid %d; -1 means no group) and to CAP_SYS_ADMIN, and this process "+
				"(euid %d) is neither: add the service user to that group "+
				"(`sysctl -w kernel.io_uring_group=GID`), set kernel.io_uring_disabled=0, or use the fallback engine",
				e.group, e.uid)
		case e.seccomp == 2:
			return seccompAdvice(e)
		default:
			return fmt.Sprintf("permission denied with kernel.io_uring_disabled=%d and no seccomp filter: a "+
				"security module (SELinux, AppArmor) probably denies io_uring; check the audit log, "+
				"or use the fallback engine", e.disabled)
		}
	case syscall.ENOMEM:
		return "out of memory creating a ring (kernels before 5.12 charge rings to RLIMIT_MEMLOCK: raise `ulimit -l`)"
	}
	return "unexpected error from io_uring_setup"
}

// Probe creates throw-away rings to find out whether io_uring is usable here
// and, if not, why. It returns a non-nil error (whose text is res.Reason, and
// which wraps the kernel errno when there is one) when it is not. It is cheap
// (a few syscalls) and safe to call from any goroutine.
func Probe() (ProbeResult, error) {
	env := readEnv()
	res := ProbeResult{
		Kernel: env.kernel, Disabled: env.disabled, Group: env.group,
		Seccomp: env.seccomp, Container: env.container,
	}
	fail := func(err error) (ProbeResult, error) {
		res.Available = false
		res.Reason = err.Error()
		return res, err
	}

	var p params
	fd, err := sysSetup(8, &p)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return fail(fmt.Errorf("uring: io_uring_setup: %w: %s", err, diagnoseSetup(errno, env)))
		}
		return fail(fmt.Errorf("uring: io_uring_setup: %w", err))
	}
	defer unix.Close(fd)
	res.Features = p.Features

	// IORING_REGISTER_PROBE: header + 256 ops, 8-byte aligned.
	var buf [(16 + 256*8) / 8]uint64
	_, err = sysRegister(fd, regProbe, unsafe.Pointer(&buf[0]), 256)
	runtime.KeepAlive(&buf)
	if err != nil {
		if errors.Is(err, syscall.EINVAL) {
			return fail(fmt.Errorf("uring: IORING_REGISTER_PROBE: %w: the kernel (%s) predates 5.6 and "+
				"lacks most operations the engine needs; use a kernel >= 6.1 or the fallback engine", err, env.kernel))
		}
		if env.seccomp == 2 && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSYS)) {
			return fail(fmt.Errorf("uring: io_uring_register: %w: %s", err, seccompAdvice(env)))
		}
		return fail(fmt.Errorf("uring: IORING_REGISTER_PROBE: %w", err))
	}
	hdr := (*probeHdr)(unsafe.Pointer(&buf[0]))
	res.LastOp = hdr.LastOp
	ops := unsafe.Slice((*probeOp)(unsafe.Pointer(&buf[2])), 256)
	for i := 0; i < int(hdr.OpsLen) && i < 256; i++ {
		if ops[i].Flags&opSupported != 0 {
			res.setOp(ops[i].Op)
		}
	}
	for _, o := range requiredOps {
		if !res.Supports(o.op) {
			res.MissingOps = append(res.MissingOps, o.name)
		}
	}
	res.Bind = res.Supports(OpBind)
	res.Listen = res.Supports(OpListen)
	for _, f := range requiredFeatures {
		if p.Features&f.feat == 0 {
			res.MissingFeatures = append(res.MissingFeatures, f.name)
		}
	}

	// DEFER_TASKRUN (6.1) also implies multishot recv (6.0) and
	// IORING_REGISTER_SYNC_CANCEL (6.0).
	var dp params
	dp.Flags = SetupSingleIssuer | SetupDeferTaskrun | SetupTaskrunFlag
	if dfd, err := sysSetup(4, &dp); err == nil {
		res.DeferTaskrun = true
		unix.Close(dfd)
	} else {
		res.MissingFeatures = append(res.MissingFeatures, "DEFER_TASKRUN/multishot recv (Linux >= 6.1)")
	}

	// Provided-buffer ring: register one page with one entry, then drop it.
	if mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		reg := bufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), RingEntries: 1, Bgid: 0}
		if _, err := sysRegister(fd, regRegisterPbufRing, unsafe.Pointer(&reg), 1); err == nil {
			res.BufRing = true
			reg = bufReg{Bgid: 0}
			sysRegister(fd, regUnregisterPbufRing, unsafe.Pointer(&reg), 1)
		}
		runtime.KeepAlive(&reg)
		unix.Munmap(mem)
	}
	if !res.BufRing {
		res.MissingFeatures = append(res.MissingFeatures, "PBUF_RING (Linux >= 5.19)")
	}

	if len(res.MissingOps) > 0 || len(res.MissingFeatures) > 0 {
		var parts []string
		if len(res.MissingOps) > 0 {
			parts = append(parts, "operations "+strings.Join(res.MissingOps, ", "))
		}
		if len(res.MissingFeatures) > 0 {
			parts = append(parts, "features "+strings.Join(res.MissingFeatures, ", "))
		}
		return fail(fmt.Errorf("uring: the kernel (%s) lacks io_uring %s needed by the io_uring engine; "+
			"use Linux >= 6.1 (6.11 for BIND) or the fallback engine", env.kernel, strings.Join(parts, " and ")))
	}
	res.Available = true
	return res, nil
}
