// Package app wires a loaded configuration to the core and an engine: it
// builds the core's Options, picks the engine, and handles signals
// (SIGHUP reload, SIGTERM graceful shutdown, SIGINT immediate exit).
package app
