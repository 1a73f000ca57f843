package testutil

import (
	"fmt"
	"testing"
	"time"
)

// WaitFor calls f every interval until it returns nil or timeout passes; it
// returns nil on success or the last error of f. It may be used from any
// goroutine.
func WaitFor(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// CheckFor calls f every interval until it returns nil; if it still fails
// after timeout, the test fails with f's last error (like nats-server's
// checkFor). Call it from the test goroutine only.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	if err := WaitFor(timeout, interval, f); err != nil {
		t.Fatal(err)
	}
}
