package pgproto

import (
	"encoding/binary"
	"errors"
)

// Startup framing errors.
var (
	ErrStartupTooShort = errors.New("invalid length of startup packet")
	ErrStartupTooLong  = errors.New("startup packet too long")
	ErrBadStartup      = errors.New("invalid startup packet layout")
)

// StartupFrame looks at buf for a complete startup-phase packet (StartupMessage,
// SSLRequest, GSSENCRequest or CancelRequest). It returns n=0 when more bytes
// are needed, or the packet's total length n, its code and its body (after the code).
func StartupFrame(buf []byte) (n int, code uint32, body []byte, err error) {
	if len(buf) < 4 {
		return 0, 0, nil, nil
	}
	l := int(binary.BigEndian.Uint32(buf))
	if l < 8 || int32(l) < 0 {
		return 0, 0, nil, ErrStartupTooShort
	}
	if l-4 > MaxStartupPacket { // PostgreSQL limits the packet without its length word
		return 0, 0, nil, ErrStartupTooLong
	}
	if len(buf) < 8 {
		return 0, 0, nil, nil
	}
	code = binary.BigEndian.Uint32(buf[4:])
	if len(buf) < l {
		return 0, code, nil, nil
	}
	return l, code, buf[8:l], nil
}

// StartupParams walks the key/value pairs of a StartupMessage body, calling fn
// for each. It fails on a missing terminator.
func StartupParams(body []byte, fn func(k, v []byte)) error {
	for {
		if len(body) == 0 {
			return ErrBadStartup
		}
		if body[0] == 0 {
			if len(body) != 1 {
				return ErrBadStartup
			}
			return nil
		}
		k, rest, ok := cstring(body)
		if !ok {
			return ErrBadStartup
		}
		v, rest2, ok := cstring(rest)
		if !ok {
			return ErrBadStartup
		}
		fn(k, v)
		body = rest2
	}
}

// CancelKeys decodes a CancelRequest body (after the code): process id and secret.
func CancelKeys(body []byte) (pid, secret uint32, ok bool) {
	if len(body) != 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:]), true
}

// AppendStartupMessage appends a protocol 3.0 StartupMessage with the given
// key/value pairs (kv is k1, v1, k2, v2, ...).
func AppendStartupMessage(dst []byte, kv ...string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, ProtocolVersion3)
	for _, s := range kv {
		dst = append(dst, s...)
		dst = append(dst, 0)
	}
	dst = append(dst, 0)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

// AppendCancelRequest appends a CancelRequest packet.
func AppendCancelRequest(dst []byte, pid, secret uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 16)
	dst = binary.BigEndian.AppendUint32(dst, CodeCancel)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return binary.BigEndian.AppendUint32(dst, secret)
}

func cstring(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}
