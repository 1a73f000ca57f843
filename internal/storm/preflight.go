package storm

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Preflight logs in n times, one after the other, over ordinary sockets
// before the storm. It fails fast, with the server's SQLSTATE and message,
// on wrong credentials, an unknown database or an unreachable server,
// instead of after a million failed logins; and it warms keys: two logins
// that see the same SCRAM salt make the ClientKey cached before the storm,
// so no storm login pays for PBKDF2. It returns the authentication method
// the server asked for.
func Preflight(ctx context.Context, addr netip.AddrPort, l Login, keys *KeyCache, n int, timeout time.Duration) (string, error) {
	p := NewProto(l, nil, keys)
	for i := 0; i < n; i++ {
		if err := preflightLogin(ctx, addr, p, timeout); err != nil {
			return "", fmt.Errorf("preflight login %d of %d to %s as %s: %w", i+1, n, addr, l.User, err)
		}
	}
	c := p.Counts()
	switch {
	case c.SCRAM > 0:
		return "SCRAM-SHA-256", nil
	case c.MD5 > 0:
		return "md5", nil
	case c.Password > 0:
		return "password", nil
	}
	return "trust", nil
}

func preflightLogin(ctx context.Context, addr netip.AddrPort, p *Proto, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var c Client
	c.Start()
	if _, err := conn.Write(p.StartupMessage()); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			res := c.Feed(p, buf[:n])
			if res.Err != nil {
				return res.Err
			}
			if res.Events&EvServerError != 0 {
				return fmt.Errorf("server error SQLSTATE %s: %s", res.CodeString(), res.Message)
			}
			if len(res.Out) > 0 {
				if _, err := conn.Write(res.Out); err != nil {
					return err
				}
			}
			if res.Events&EvLoggedIn != 0 {
				conn.Write(TerminateMessage())
				return nil
			}
		}
		if err != nil {
			return fmt.Errorf("during login: %w", err)
		}
	}
}
