package storm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SysctlMode says how a wanted value is applied.
type SysctlMode uint8

const (
	SysctlAtLeast SysctlMode = iota // raise every field to at least the wanted value, never lower
	SysctlExact                     // set exactly
	SysctlWiden                     // a "lo hi" range: lower lo and raise hi to include the wanted range
	SysctlInfo                      // report only, never changed (Why says why)
)

// SysctlWant is one kernel setting a large run needs.
type SysctlWant struct {
	Key      string // dotted name, e.g. "net.core.somaxconn"
	Value    string // fields separated by spaces
	Mode     SysctlMode
	Why      string
	Optional bool // absent on this kernel (e.g. nf_conntrack not loaded): skip silently
	// Global: one value for the whole machine, not visible inside a network
	// namespace other than the initial one (tcp_mem, tcp_max_orphans). A run
	// inside such a namespace (bench/million.sh NETNS=1) reports it as
	// skipped; the script applies it from the initial namespace first.
	Global bool
}

// SysctlChange is the outcome for one setting.
type SysctlChange struct {
	Key     string `json:"key"`
	Old     string `json:"old"`
	New     string `json:"new"`
	Changed bool   `json:"changed"`
	Note    string `json:"note,omitempty"`
	Err     string `json:"error,omitempty"`
}

func (c SysctlChange) String() string {
	switch {
	case c.Err != "":
		return fmt.Sprintf("%-34s %s: %s", c.Key, c.Old, c.Err)
	case c.Changed:
		return fmt.Sprintf("%-34s %s -> %s   (%s)", c.Key, c.Old, c.New, c.Note)
	default:
		return fmt.Sprintf("%-34s %s unchanged   (%s)", c.Key, c.Old, c.Note)
	}
}

// WantedSysctls lists what a run of n connections over loopback needs
// (measured on this kind of machine; see docs/pgstorm.md). ports is the
// explicit source-port range in use, or nil when the kernel picks ports.
func WantedSysctls(n int, ports *[2]int) []SysctlWant {
	w := []SysctlWant{
		{Key: "net.core.somaxconn", Value: "65535", Mode: SysctlAtLeast,
			Why: "listen backlog cap: a connect storm overflows 4096 and SYNs are dropped (1 s retransmit)"},
		{Key: "net.ipv4.tcp_max_syn_backlog", Value: "65535", Mode: SysctlAtLeast,
			Why: "half-open connections queued per listener during a storm"},
		{Key: "net.core.netdev_max_backlog", Value: "65536", Mode: SysctlAtLeast, Global: true,
			Why: "loopback packets go through the per-CPU backlog; bursts of SYNs overflow 1000"},
		{Key: "fs.file-max", Value: "4194304", Mode: SysctlAtLeast,
			Why: "direct descriptors count in fs.file-nr; both ends of 1M connections are 2M files"},
		{Key: "net.ipv4.tcp_mem", Value: "1048576 1572864 2097152", Mode: SysctlAtLeast, Global: true,
			Why: "pages for TCP buffers: tearing down 2M sockets peaked at ~773K pages (default max ~575K)"},
		{Key: "net.ipv4.tcp_tw_reuse", Value: "1", Mode: SysctlExact,
			Why: "reuse TIME_WAIT ports for new outgoing connections (auto-port mode)"},
		{Key: "net.ipv4.tcp_max_orphans", Value: "1048576", Mode: SysctlAtLeast, Global: true,
			Why: "closing many connections at once leaves them orphaned (FIN_WAIT) for a while"},
		{Key: "net.netfilter.nf_conntrack_max", Value: "2097152", Mode: SysctlAtLeast, Optional: true, Global: true,
			Why: "if connection tracking is active, every loopback connection takes an entry"},
		{Key: "fs.nr_open", Mode: SysctlInfo,
			Why: "irrelevant: direct descriptors live in io_uring file tables, not the fd table"},
	}
	if ports != nil {
		w = append(w, SysctlWant{Key: "net.ipv4.ip_local_port_range", Mode: SysctlInfo,
			Why: fmt.Sprintf("left alone: pgstorm binds explicit source ports %d-%d outside it, on many 127.x addresses", ports[0], ports[1])})
	} else if n > 20000 {
		w = append(w, SysctlWant{Key: "net.ipv4.ip_local_port_range", Value: "10000 65000", Mode: SysctlWiden,
			Why: "auto-port mode: one source address gets at most range-size connections to one destination"})
	}
	return w
}

const globalNote = "global: not writable in this network namespace; set it from the initial one"

// sysctlPath maps "net.core.somaxconn" to <procSys>/net/core/somaxconn.
func sysctlPath(procSys, key string) string {
	return filepath.Join(procSys, filepath.FromSlash(strings.ReplaceAll(key, ".", "/")))
}

// ReadSysctl reads one setting, fields separated by single spaces.
func ReadSysctl(procSys, key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(procSys, key))
	if err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

// ApplySysctls applies wants under procSys (normally /proc/sys) and reports
// what it did; with dryRun nothing is written. Values are only raised
// (except SysctlExact), so running it twice changes nothing the second time.
func ApplySysctls(procSys string, wants []SysctlWant, dryRun bool) []SysctlChange {
	var out []SysctlChange
	for _, w := range wants {
		old, err := ReadSysctl(procSys, w.Key)
		if err != nil {
			if w.Optional && os.IsNotExist(err) {
				continue
			}
			if w.Global && os.IsNotExist(err) {
				out = append(out, SysctlChange{Key: w.Key, Old: "-", New: "-", Note: globalNote})
				continue
			}
			out = append(out, SysctlChange{Key: w.Key, Err: err.Error()})
			continue
		}
		ch := SysctlChange{Key: w.Key, Old: old, New: old, Note: w.Why}
		if w.Mode != SysctlInfo {
			nv, err := target(old, w)
			if err != nil {
				ch.Err = err.Error()
			} else if nv != old {
				ch.New, ch.Changed = nv, true
				if !dryRun {
					if err := os.WriteFile(sysctlPath(procSys, w.Key), []byte(nv+"\n"), 0o644); err != nil {
						ch.New, ch.Changed = old, false
						if w.Global && os.IsPermission(err) {
							ch.Note = globalNote // read-only inside a network namespace
						} else {
							ch.Err = err.Error()
						}
					}
				}
			}
		}
		out = append(out, ch)
	}
	return out
}

// target computes the value to write for w given the current value.
func target(old string, w SysctlWant) (string, error) {
	if w.Mode == SysctlExact {
		return w.Value, nil
	}
	cur := strings.Fields(old)
	want := strings.Fields(w.Value)
	if len(cur) != len(want) {
		return "", fmt.Errorf("has %d fields, want %d", len(cur), len(want))
	}
	res := make([]string, len(cur))
	for i := range cur {
		c, err1 := strconv.ParseInt(cur[i], 10, 64)
		v, err2 := strconv.ParseInt(want[i], 10, 64)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("not numeric: %q / %q", old, w.Value)
		}
		switch {
		case w.Mode == SysctlWiden && i == 0:
			c = min(c, v)
		default:
			c = max(c, v)
		}
		res[i] = strconv.FormatInt(c, 10)
	}
	return strings.Join(res, " "), nil
}

// LocalPortRange reads net.ipv4.ip_local_port_range.
func LocalPortRange(procSys string) (lo, hi int, err error) {
	s, err := ReadSysctl(procSys, "net.ipv4.ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range %q", s)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("ip_local_port_range %q", s)
	}
	return lo, hi, nil
}
