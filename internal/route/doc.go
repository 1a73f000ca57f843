// Package route holds poolmgr's replica-selection algorithms (the seed's
// `routing` key): round_robin, least_conn, random and hash (rendezvous
// hashing, so removing a replica only moves that replica's share). They are
// pure functions over a candidate list; the core decides which backends are
// candidates (role, health, lag, draining, read-your-writes).
package route
