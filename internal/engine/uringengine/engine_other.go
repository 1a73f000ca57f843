//go:build !linux

package uringengine

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Options tunes the engine (see the Linux build).
type Options struct {
	FileSlots, ServerSlots, RefuseSlots uint32
	BufSize                             int
	BufCount                            uint16
	SQEntries, CQEntries                uint32
	Accepts                             int
}

// Engine is unavailable outside Linux.
type Engine struct{}

var errNotLinux = errors.New("io_uring engine: io_uring exists only on Linux; use io_engine = \"fallback\"")

// New always fails outside Linux.
func New([]*proxy.Loop, *slog.Logger, func() time.Duration) (*Engine, error) { return nil, errNotLinux }

// NewWithOptions always fails outside Linux.
func NewWithOptions([]*proxy.Loop, *slog.Logger, func() time.Duration, Options) (*Engine, error) {
	return nil, errNotLinux
}

func (*Engine) Listen(string) error    { return errNotLinux }
func (*Engine) Addr() net.Addr         { return nil }
func (*Engine) Run() error             { return errNotLinux }
func (*Engine) StopAccepting()         {}
func (*Engine) Drained() bool          { return true }
func (*Engine) Each(func(*proxy.Loop)) {}
func (*Engine) Close()                 {}
