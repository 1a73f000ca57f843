package storm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ProcSample is a snapshot of a process: resident memory and open fds.
type ProcSample struct {
	Phase   string  `json:"phase"`
	At      float64 `json:"at_s"` // seconds since the run started
	RSSKB   int64   `json:"rss_kb"`
	FDs     int64   `json:"fds"`
	Threads int64   `json:"threads"`
	CPUSec  float64 `json:"cpu_s"` // utime + stime so far
	SysSec  float64 `json:"sys_s"` // stime so far (kernel time; CPUSec - SysSec is user time)
	Err     string  `json:"error,omitempty"`
}

// ReadProc samples /proc/<pid>/status (VmRSS, Threads) and counts
// /proc/<pid>/fd.
func ReadProc(procRoot string, pid int) (ProcSample, error) {
	var s ProcSample
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	s.RSSKB = statusField(b, "VmRSS:")
	s.Threads = statusField(b, "Threads:")
	if st, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
		s.CPUSec, s.SysSec = statCPU(st)
	}
	f, err := os.Open(filepath.Join(dir, "fd"))
	if err != nil {
		return s, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(4096)
		s.FDs += int64(len(names))
		if err != nil || len(names) == 0 {
			break
		}
	}
	return s, nil
}

// statCPU returns utime+stime and stime of a /proc/<pid>/stat line in
// seconds (USER_HZ is 100 on Linux).
func statCPU(b []byte) (total, sys float64) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100, float64(st) / 100
}

// statusField returns the first number after key in a /proc status-like
// file ("VmRSS:   1234 kB" -> 1234), or -1.
func statusField(b []byte, key string) int64 {
	i := bytes.Index(b, []byte("\n"+key))
	if i < 0 {
		if !bytes.HasPrefix(b, []byte(key)) {
			return -1
		}
	} else {
		b = b[i+1:]
	}
	b = b[len(key):]
	if j := bytes.IndexByte(b, '\n'); j >= 0 {
		b = b[:j]
	}
	fs := strings.Fields(string(b))
	if len(fs) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(fs[0], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// KernelSample is the system-wide kernel memory and socket counters.
type KernelSample struct {
	Phase        string `json:"phase"`
	SlabKB       int64  `json:"slab_kb"`
	SUnreclaimKB int64  `json:"sunreclaim_kb"`
	TCPInUse     int64  `json:"tcp_inuse"`
	TCPTimeWait  int64  `json:"tcp_tw"`
	TCPMemPages  int64  `json:"tcp_mem_pages"`
	// Cumulative counters of /proc/net/netstat (system-wide): SYNs dropped
	// because a listener's accept queue was full (ListenOverflows) or for
	// any reason (ListenDrops), and SYN cookies sent (SYN queue full).
	ListenOverflows int64 `json:"listen_overflows"`
	ListenDrops     int64 `json:"listen_drops"`
	SyncookiesSent  int64 `json:"syncookies_sent"`
}

// ReadKernel reads Slab and SUnreclaim from <procRoot>/meminfo and the TCP
// line of <procRoot>/net/sockstat.
func ReadKernel(procRoot string) (KernelSample, error) {
	var k KernelSample
	b, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return k, err
	}
	k.SlabKB = statusField(b, "Slab:")
	k.SUnreclaimKB = statusField(b, "SUnreclaim:")
	if b, err := os.ReadFile(filepath.Join(procRoot, "net", "sockstat")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || f[0] != "TCP:" {
				continue
			}
			for i := 1; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				switch f[i] {
				case "inuse":
					k.TCPInUse = n
				case "tw":
					k.TCPTimeWait = n
				case "mem":
					k.TCPMemPages = n
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "net", "netstat")); err == nil {
		var names []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || f[0] != "TcpExt:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			for i := 1; i < len(f) && i < len(names); i++ {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				switch names[i] {
				case "ListenOverflows":
					k.ListenOverflows = n
				case "ListenDrops":
					k.ListenDrops = n
				case "SyncookiesSent":
					k.SyncookiesSent = n
				}
			}
			break
		}
	}
	return k, nil
}

// ReadPidfile reads a pid from a file (first line, whitespace trimmed),
// waiting up to wait for it to appear.
func ReadPidfile(path string, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("pidfile %s: %q is not a pid", path, line)
			}
			return pid, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("pidfile: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
