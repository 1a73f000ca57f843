package testutil

import (
	"errors"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	n := 0
	err := WaitFor(time.Second, time.Millisecond, func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("err=%v n=%d", err, n)
	}
	err = WaitFor(20*time.Millisecond, 5*time.Millisecond, func() error { return errors.New("never") })
	if err == nil {
		t.Fatal("WaitFor succeeded on a failing condition")
	}
}

func TestHexPort(t *testing.T) {
	if got := hexPort("0100007F:4E20"); got != 20000 {
		t.Fatalf("hexPort = %d", got)
	}
}
