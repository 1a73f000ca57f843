package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Raw wire helpers for the startup tests.

const (
	protocol30     = 196608   // 3.0
	sslRequestCode = 80877103 // 1234.5679
	gssEncReqCode  = 80877104 // 1234.5680
	cancelCode     = 80877102 // 1234.5678
)

// startupPacket builds a StartupMessage (or any startup-phase packet with a
// 4-byte code followed by key/value pairs).
func startupPacket(code uint32, kv ...string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[4:], code)
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	if len(kv) > 0 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// backendMsg is one message from the proxy.
type backendMsg struct {
	typ  byte
	body []byte
}

// readMsg reads one typed backend message.
func readMsg(r io.Reader) (backendMsg, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return backendMsg{}, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n < 4 || n > 1<<20 {
		return backendMsg{}, fmt.Errorf("message %q with bad length %d", h[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return backendMsg{}, err
	}
	return backendMsg{h[0], body}, nil
}

// readStartupReply reads the proxy's answer to a bad startup packet: a
// protocol-3 message, or (typ 'e') a protocol-2 error: 'E' and a
// NUL-terminated text without length.
func readStartupReply(r io.Reader) (backendMsg, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:1]); err != nil {
		return backendMsg{}, err
	}
	if _, err := io.ReadFull(r, h[1:]); err != nil {
		if h[0] == 'E' && isEOFOrReset(err) {
			return backendMsg{typ: 'e', body: h[1:]}, nil
		}
		return backendMsg{}, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if h[0] == 'E' && (n < 4 || n > 1<<16) {
		rest, _ := io.ReadAll(io.LimitReader(r, 1<<16))
		return backendMsg{typ: 'e', body: append(h[1:], rest...)}, nil
	}
	if n < 4 || n > 1<<20 {
		return backendMsg{}, fmt.Errorf("message %q with bad length %d", h[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return backendMsg{}, err
	}
	return backendMsg{h[0], body}, nil
}

// errorFields parses an ErrorResponse/NoticeResponse body.
func errorFields(body []byte) map[byte]string {
	f := map[byte]string{}
	for len(body) > 0 && body[0] != 0 {
		k := body[0]
		body = body[1:]
		i := 0
		for i < len(body) && body[i] != 0 {
			i++
		}
		f[k] = string(body[:i])
		if i < len(body) {
			i++
		}
		body = body[i:]
	}
	return f
}

// isEOFOrReset reports an orderly or abortive close by the peer.
func isEOFOrReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE)
}

// isTimeout reports a read deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
