package main

import "testing"

func TestParsePorts(t *testing.T) {
	if lo, hi, err := parsePorts("20000-20999"); err != nil || lo != 20000 || hi != 20999 {
		t.Fatalf("%d %d %v", lo, hi, err)
	}
	if lo, hi, err := parsePorts("auto"); err != nil || lo < 1 || hi > 65535 || lo > hi {
		t.Fatalf("auto: %d %d %v", lo, hi, err)
	}
	for _, bad := range []string{"", "10", "x-1", "1-x", "0-10", "10-70000", "20-10"} {
		if _, _, err := parsePorts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestResolve(t *testing.T) {
	ap, err := resolve("127.0.0.1:6500")
	if err != nil || ap.String() != "127.0.0.1:6500" {
		t.Fatalf("%v %v", ap, err)
	}
	if ap, err := resolve("localhost:6500"); err != nil || !ap.Addr().Is4() || ap.Port() != 6500 {
		t.Fatalf("localhost: %v %v", ap, err)
	}
	if _, err := resolve("[::1]:6500"); err == nil {
		t.Fatal("IPv6 accepted")
	}
}
