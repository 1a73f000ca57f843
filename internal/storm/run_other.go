//go:build !linux

package storm

import (
	"context"
	"errors"
)

// Run needs Linux io_uring.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	return nil, errors.New("pgstorm needs Linux (io_uring)")
}
