// Package fallback is poolmgr's portable engine, built on Go's net package.
// It runs the same sans-I/O core as the io_uring engine and is used where
// io_uring is unavailable (other OSes, seccomp-filtered containers).
//
// Each loop is a mutex: every event (data, connect, close, tick, posted
// function) runs the core under its loop's mutex and flushes queued writes
// before releasing it. Reads use one goroutine per connection (the net
// package's model), so this engine is for portability, not for a million
// idle clients; writes are attempted non-blocking from the loop and only a
// connection whose socket buffer is full gets a writer goroutine until it
// drains.
package fallback
