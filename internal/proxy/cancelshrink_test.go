package proxy

import "testing"

// TestCancelRegistryShrinks: after a storm of clients leaves, each shard's
// map is rebuilt at its current size (a Go map keeps its buckets), and the
// clients still registered stay found.
func TestCancelRegistryShrinks(t *testing.T) {
	var r cancelRegistry
	r.init()
	clients := make([]*Client, 200000)
	for i := range clients {
		clients[i] = &Client{}
		r.register(clients[i])
	}
	peak := 0
	for i := range r.shards {
		peak = max(peak, r.shards[i].peak)
	}
	if peak <= shrinkMinPeak {
		t.Fatalf("peak %d per shard: too few clients for the test", peak)
	}
	keep := clients[:100]
	for _, c := range clients[100:] {
		r.unregister(c)
	}
	for i := range r.shards {
		sh := &r.shards[i]
		if sh.peak > shrinkMinPeak { // rebuilt once it fell under 1/8 of the 3125 per shard
			t.Fatalf("shard %d: peak %d with %d entries left: not shrunk", i, sh.peak, len(sh.m))
		}
	}
	for _, c := range keep {
		if got := r.lookup(c.cancelPID, c.cancelSecret); got != c {
			t.Fatalf("client %d lost after the shrink", c.cancelPID)
		}
	}
	for _, c := range clients[100:] {
		if r.lookup(c.cancelPID, c.cancelSecret) != nil {
			t.Fatal("unregistered client still found")
		}
	}
}
