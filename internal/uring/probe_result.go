package uring

import (
	"fmt"
	"strings"
)

// ProbeResult describes whether io_uring is usable by poolmgr's io_uring
// engine in this process, and if not, why.
type ProbeResult struct {
	// Available is true when a ring can be created and every required
	// operation and feature is present.
	Available bool
	// Reason is empty when Available, otherwise an actionable explanation
	// (the same text as Probe's error).
	Reason string

	Kernel    string // uname release
	Disabled  int    // sysctl kernel.io_uring_disabled (0, 1, 2), -1 if absent
	Group     int    // sysctl kernel.io_uring_group, -1 if absent
	Seccomp   int    // Seccomp mode from /proc/self/status (0 none, 2 filter), -1 unknown
	Container string // detected container runtime ("docker", "podman", "kubernetes", ...) or ""

	Features        uint32   // IORING_FEAT_* of a default ring
	LastOp          uint8    // highest opcode the kernel knows
	MissingOps      []string // required opcodes the kernel lacks
	MissingFeatures []string // required features the kernel lacks

	DeferTaskrun bool // SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG rings work (Linux >= 6.1)
	BufRing      bool // provided-buffer rings work (Linux >= 5.19)
	Bind         bool // IORING_OP_BIND (optional, Linux >= 6.11)
	Listen       bool // IORING_OP_LISTEN (optional, Linux >= 6.11)

	ops [4]uint64 // supported-opcode bitset
}

// Supports reports whether the kernel supports opcode op.
func (p *ProbeResult) Supports(op uint8) bool { return p.ops[op/64]&(1<<(op%64)) != 0 }

func (p *ProbeResult) setOp(op uint8) { p.ops[op/64] |= 1 << (op % 64) }

// String renders a multi-line report, for logs and `poolmgr check`.
func (p ProbeResult) String() string {
	var b strings.Builder
	if p.Available {
		b.WriteString("io_uring: available\n")
	} else {
		b.WriteString("io_uring: NOT available: ")
		b.WriteString(p.Reason)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  kernel %s, kernel.io_uring_disabled=%d, io_uring_group=%d, seccomp=%d", p.Kernel, p.Disabled, p.Group, p.Seccomp)
	if p.Container != "" {
		fmt.Fprintf(&b, ", container=%s", p.Container)
	}
	b.WriteString("\n")
	if p.Features != 0 || p.LastOp != 0 {
		fmt.Fprintf(&b, "  features %#x, last opcode %d, defer_taskrun=%v, buf_ring=%v, bind=%v, listen=%v\n",
			p.Features, p.LastOp, p.DeferTaskrun, p.BufRing, p.Bind, p.Listen)
	}
	if len(p.MissingOps) > 0 {
		fmt.Fprintf(&b, "  missing opcodes: %s\n", strings.Join(p.MissingOps, ", "))
	}
	if len(p.MissingFeatures) > 0 {
		fmt.Fprintf(&b, "  missing features: %s\n", strings.Join(p.MissingFeatures, ", "))
	}
	return b.String()
}
