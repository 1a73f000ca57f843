// Package uringengine is poolmgr's io_uring engine: it drives the same
// sans-I/O core (internal/proxy) as the portable fallback engine, with the
// raw binding in internal/uring.
//
// # Loops and threads
//
// There is one event loop per core *proxy.Loop. Each runs on its own
// goroutine locked to its OS thread (runtime.LockOSThread) and creates its
// ring there (SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG), so only that
// thread ever submits, registers or reaps. The loop owns its connections and
// all their state; every core method for a loop runs on that thread, and the
// per-query path takes no lock at all.
//
// A loop iteration is: submit what is prepared and wait for at least one CQE
// (io_uring_enter with GETEVENTS and a timeout up to the next tick; the
// binding loops while IORING_SQ_TASKRUN says deferred completions are still
// pending), dispatch the CQE batch, run posted functions, call core.Tick
// every 100 ms, then flush: every connection touched during the batch is
// "serviced" once (writes started, reads armed or cancelled, closes carried
// out, accepts re-armed). The SQEs the flush prepares go to the kernel with
// the next wait, so a busy loop makes one io_uring_enter per batch.
//
// # Cross-thread work (Post)
//
// Post appends to a mutex-protected queue and, on the empty->pending
// transition only (an atomic flag), writes an eventfd. Each loop keeps one
// IORING_OP_READ armed on its eventfd, so the write completes a CQE that
// wakes the loop out of io_uring_enter. The loop runs the queue after every
// batch. Each(fn) and StopAccepting are built on Post; Drained reads an atomic
// the loop refreshes after every batch.
//
// # Connections and handles
//
// Sockets are direct descriptors: they live in the ring's registered file
// table, not in the process fd table, so a loop can hold far more
// connections than RLIMIT_NOFILE allows. Per-connection state is a small
// fixed struct (about 40 bytes) in a slice indexed by the slot; the buffers
// a busy connection needs (output, data held while paused, dial state) hang
// off a pooled *connIO that is returned to the loop when the connection goes
// idle. No map, no goroutine, no buffer per idle connection.
//
// A proxy.Handle is (ring index << 56 | generation << 32 | slot). Inside the
// engine a connection is named by id = ring << 24 | slot, and every SQE's
// user_data is uring.PackUserData(op, id, generation); the generation is
// bumped whenever a slot is handed out again, and a slot is only reused once
// every operation submitted for it has completed (a per-slot in-flight
// count), so a late CQE can never be mistaken for a newer connection.
//
// The table size is Options.FileSlots per ring (default: the hard
// RLIMIT_NOFILE, at most 1<<20 — the kernel caps a table at the soft limit,
// which the binding raises to the hard one).
//
// # Several rings per loop
//
// Since one table holds at most RLIMIT_NOFILE slots, a loop may own several
// rings, each with its own table: Options.MaxConns (client slots per loop;
// the app passes its share of max_client_connections) allows up to
// 1 + ceil((MaxConns - ring 0's client slots) / FileSlots) rings (at most
// 256). Only ring 0 exists at start; when no ring has a free client slot,
// the next ring is created on the loop's thread (same SINGLE_ISSUER |
// DEFER_TASKRUN setup, its own sparse table, a small provided-buffer ring of
// min(BufCount, 256) buffers, as most clients are idle). Accepts take their
// slot from the lowest ring with a free one (clientSlot) and are submitted
// on that ring, into that slot; the
// client's recvs, sends, cancels and close go to the same ring and use its
// buffer ring. Server connections (Dial) and refusal slots stay on ring 0;
// extra rings reserve nothing. Rings are not closed when they empty, but an
// extra ring found empty at two checks a second apart gives its buffers'
// memory back (trimRings: madvise MADV_DONTNEED; nothing is in flight on an
// empty ring), so RSS falls back once a storm of clients has left.
//
// The loop blocks on ring 0 only. The loop's eventfd is registered
// (IORING_REGISTER_EVENTFD) on every extra ring, and its read is armed on
// ring 0, so a completion (or deferred task work queued) on any ring wakes
// the wait. Before waiting and after waking, the loop enters only the extra
// rings that have SQEs to submit or IORING_SQ_TASKRUN / CQ-overflow set (a
// memory read each, no syscall for idle rings), looping while TASKRUN stays
// set (the DEFER_TASKRUN pitfall: leftovers do not re-signal the eventfd),
// and reaps those with CQEs ready; if any has CQEs the wait on ring 0 does
// not block.
//
// A few slots of ring 0 (ServerSlots) are
// kept free of clients so the proxy can still open server connections when
// clients fill the table, and RefuseSlots more are used only to refuse:
// when no client slot is free in any ring and no further ring may be created
// (and no regular accept is still armed), one
// accept is armed into a refusal slot; the connection it takes has its
// startup packet read (at most 2 s), gets a FATAL 53300 "too many client
// connections" and is closed (SEND hard-linked to CLOSE). That accept is
// cancelled as soon as a client slot frees. If all refusal slots are busy,
// accepting pauses until a slot frees (clients wait in the listen backlog).
//
// # Accept distribution
//
// One listening socket (a normal fd, TCP_NODELAY set on it so every accepted
// socket inherits it — verified on Linux) is shared by all loops: each loop
// keeps Options.Accepts IORING_OP_ACCEPT requests armed on it, each into an
// explicit free slot of its own table (file_index = slot+1; kernel slot
// allocation drops connections when a table fills). The kernel arms accept
// polls with EPOLLEXCLUSIVE, so a new connection wakes one loop, and a busy
// loop, which re-arms late, naturally takes fewer. We chose this over one
// SO_REUSEPORT listener per loop because SO_REUSEPORT would silently let a
// second poolmgr (same uid) share the port instead of failing with "address
// in use", and its hash distribution ignores how busy a loop is.
//
// # Reads
//
// Each open connection has one multishot recv armed with a provided-buffer
// ring (IORING_REGISTER_PBUF_RING, Options.BufCount buffers of
// Options.BufSize bytes per loop, default 1024 x 16 KiB). The bytes are
// handed to Endpoint.OnData straight from the buffer, which is recycled as
// soon as OnData returns (the core copies what it keeps). A CQE without
// IORING_CQE_F_MORE ends the request: ENOBUFS or a kernel-ended multishot is
// re-armed at the flush; res == 0 is EOF and becomes OnClosed(nil); other
// errors become OnClosed(err).
//
// PauseRead(h, true) cancels the recv (IORING_OP_ASYNC_CANCEL by user_data);
// data the kernel delivered before the cancel took effect is copied aside
// and delivered when reads resume, before the recv is re-armed; data that
// arrives in between stays in the socket (TCP flow control does the rest).
// Pause and resume within one batch cost nothing.
//
// # Writes
//
// Send appends to the connection's pending buffer (taken from a per-loop free
// list while output is queued). At the flush, if no SEND is in flight,
// pending becomes the in-flight buffer and one SEND (MSG_NOSIGNAL |
// MSG_WAITALL, which also makes the kernel retry short sends) is submitted;
// a short completion resubmits the rest. Later Sends accumulate in a new
// pending buffer and go out when the in-flight one completes: one SEND per
// connection at a time, so bytes are written in order, and memory the kernel
// reads is never appended to while in flight. OnWriteBlocked(true) is
// reported when queued output passes 1 MiB, (false) when it drains below
// 256 KiB, as in the fallback engine.
//
// # Close
//
// Close(h) makes the handle dead at once (no further events, Send becomes a
// no-op), cancels the recv, lets queued output drain, then submits
// IORING_OP_CLOSE on the direct descriptor (close_direct). A connection whose
// peer never reads is cut after 15 s. Closing a connecting handle cancels
// the CONNECT.
//
// # Server connections (Dial)
//
// Dial takes a slot, creates the socket with socket(2), sets TCP_NODELAY,
// installs it into the slot (IORING_REGISTER_FILES_UPDATE) and closes the
// regular fd, then submits CONNECT on the direct descriptor linked to a
// LINK_TIMEOUT (the dial timeout), in one submit. The sockaddr and timespec
// live in a heap object kept on the connection until the CQEs. (Server
// connections are few; IORING_OP_URING_CMD setsockopt would need Linux
// 6.7, the engine only needs 6.1.) Host names are resolved on a goroutine
// and the connect continues on the loop via Post. A Unix-socket backend
// ("/directory:port", dialunix.go) gets an AF_UNIX socket (no TCP_NODELAY)
// and a sockaddr_un, then the same install and CONNECT. OnConnected is called
// exactly once, from the loop, never from inside Dial; not at all after the
// core closed the handle.
package uringengine
