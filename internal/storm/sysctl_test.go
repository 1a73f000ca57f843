package storm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeProcSys(t *testing.T, vals map[string]string) string {
	dir := t.TempDir()
	for k, v := range vals {
		p := sysctlPath(dir, k)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestApplySysctls(t *testing.T) {
	dir := fakeProcSys(t, map[string]string{
		"net.core.somaxconn":           "4096",
		"net.ipv4.tcp_max_syn_backlog": "100000", // already higher: never lowered
		"net.core.netdev_max_backlog":  "1000",
		"fs.file-max":                  "2466177",
		"net.ipv4.tcp_mem":             "287901\t383868\t575802",
		"net.ipv4.tcp_tw_reuse":        "2",
		"net.ipv4.tcp_max_orphans":     "131072",
		"fs.nr_open":                   "1048576",
		"net.ipv4.ip_local_port_range": "32768\t60999",
	})
	wants := WantedSysctls(1000000, nil)
	dry := ApplySysctls(dir, wants, true)
	if v, _ := ReadSysctl(dir, "net.core.somaxconn"); v != "4096" {
		t.Fatal("dry run wrote")
	}
	got := map[string]SysctlChange{}
	for _, c := range ApplySysctls(dir, wants, false) {
		got[c.Key] = c
	}
	if len(dry) != len(got) {
		t.Fatalf("dry run reports %d, apply %d", len(dry), len(got))
	}
	if _, ok := got["net.netfilter.nf_conntrack_max"]; ok {
		t.Fatal("optional missing setting reported")
	}
	for key, want := range map[string]string{
		"net.core.somaxconn":           "65535",
		"net.ipv4.tcp_max_syn_backlog": "100000",
		"net.ipv4.tcp_mem":             "1048576 1572864 2097152",
		"net.ipv4.tcp_tw_reuse":        "1",
		"fs.nr_open":                   "1048576",
		"net.ipv4.ip_local_port_range": "10000 65000",
	} {
		v, _ := ReadSysctl(dir, key)
		if v != want || got[key].New != want {
			t.Errorf("%s = %q (reported %q), want %q", key, v, got[key].New, want)
		}
	}
	if got["net.ipv4.tcp_max_syn_backlog"].Changed || got["fs.nr_open"].Changed || !got["net.core.somaxconn"].Changed {
		t.Fatal("changed flags wrong")
	}
	for _, c := range ApplySysctls(dir, wants, false) {
		if c.Changed {
			t.Errorf("second apply changed %s", c.Key)
		}
	}
	// Explicit source ports: the port range is left alone and says why.
	for _, c := range ApplySysctls(dir, WantedSysctls(1000000, &[2]int{10000, 32767}), true) {
		if c.Key == "net.ipv4.ip_local_port_range" && (c.Changed || !strings.Contains(c.Note, "10000-32767")) {
			t.Errorf("port range with explicit ports: %+v", c)
		}
	}
	if lo, hi, err := LocalPortRange(dir); err != nil || lo != 10000 || hi != 65000 {
		t.Fatalf("LocalPortRange %d %d %v", lo, hi, err)
	}
}

func TestReadProcAndKernel(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "42", "fd"), 0o755)
	os.WriteFile(filepath.Join(dir, "42", "status"), []byte("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t  12345 kB\nThreads:\t7\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "42", "stat"), []byte("42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0\n"), 0o644)
	for _, n := range []string{"0", "1", "2"} {
		os.WriteFile(filepath.Join(dir, "42", "fd", n), nil, 0o644)
	}
	s, err := ReadProc(dir, 42)
	if err != nil || s.RSSKB != 12345 || s.FDs != 3 || s.Threads != 7 || s.CPUSec != 4 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ReadProc(dir, 43); err == nil {
		t.Fatal("missing process read")
	}
	os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: 1 kB\nSlab:  300 kB\nSReclaimable: 100 kB\nSUnreclaim: 200 kB\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	os.WriteFile(filepath.Join(dir, "net", "sockstat"), []byte("sockets: used 5\nTCP: inuse 29 orphan 0 tw 48 alloc 29 mem 32\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "net", "netstat"), []byte("TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 1 2 3\nIpExt: A\nIpExt: 1\n"), 0o644)
	k, err := ReadKernel(dir)
	if err != nil || k.SlabKB != 300 || k.SUnreclaimKB != 200 || k.TCPInUse != 29 || k.TCPTimeWait != 48 || k.TCPMemPages != 32 ||
		k.SyncookiesSent != 1 || k.ListenOverflows != 2 || k.ListenDrops != 3 {
		t.Fatalf("%+v %v", k, err)
	}
	pf := filepath.Join(dir, "pid")
	os.WriteFile(pf, []byte(" 4242\n"), 0o644)
	if pid, err := ReadPidfile(pf, 0); err != nil || pid != 4242 {
		t.Fatalf("pidfile %d %v", pid, err)
	}
}

// Inside a network namespace other than the initial one, global settings
// (tcp_mem, tcp_max_orphans, netdev_max_backlog) are absent: reported as
// skipped, not as errors, so bench/million.sh NETNS=1 can apply the rest.
func TestApplySysctlsInNetns(t *testing.T) {
	dir := fakeProcSys(t, map[string]string{
		"net.core.somaxconn":           "4096",
		"net.ipv4.tcp_max_syn_backlog": "2048",
		"fs.file-max":                  "2466177",
		"net.ipv4.tcp_tw_reuse":        "2",
		"fs.nr_open":                   "1048576",
	})
	for _, c := range ApplySysctls(dir, WantedSysctls(1000, nil), false) {
		if c.Err != "" {
			t.Errorf("%s: error %q", c.Key, c.Err)
		}
		switch c.Key {
		case "net.ipv4.tcp_mem", "net.ipv4.tcp_max_orphans", "net.core.netdev_max_backlog":
			if c.Changed || c.Note != globalNote {
				t.Errorf("%s: %+v, want skipped as global", c.Key, c)
			}
		case "net.netfilter.nf_conntrack_max":
			t.Errorf("optional missing setting reported: %+v", c)
		}
	}
	if v, _ := ReadSysctl(dir, "net.core.somaxconn"); v != "65535" {
		t.Errorf("somaxconn = %q, want 65535", v)
	}
}
