package pgproto

import "encoding/binary"

// ReadyStatus returns the transaction status byte of a ReadyForQuery body.
func ReadyStatus(body []byte) (byte, bool) {
	if len(body) != 1 {
		return 0, false
	}
	return body[0], true
}

// ParameterStatus decodes a ParameterStatus body into key and value.
func ParameterStatus(body []byte) (k, v []byte, ok bool) {
	k, rest, ok := cstring(body)
	if !ok {
		return nil, nil, false
	}
	v, rest, ok = cstring(rest)
	if !ok || len(rest) != 0 {
		return nil, nil, false
	}
	return k, v, true
}

// BackendKeyData decodes a BackendKeyData body.
func BackendKeyData(body []byte) (pid, secret uint32, ok bool) {
	if len(body) != 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:]), true
}

// AuthCode decodes an Authentication body into its code and remaining data.
func AuthCode(body []byte) (code int32, data []byte, ok bool) {
	if len(body) < 4 {
		return 0, nil, false
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:], true
}

// ErrorField returns the value of field f ('C' code, 'M' message, 'S' severity...)
// of an ErrorResponse or NoticeResponse body.
func ErrorField(body []byte, f byte) []byte {
	for len(body) > 0 && body[0] != 0 {
		t := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			return nil
		}
		if t == f {
			return v
		}
		body = rest
	}
	return nil
}

// QueryText returns the SQL text of a Query body (without its NUL).
func QueryText(body []byte) ([]byte, bool) {
	s, rest, ok := cstring(body)
	return s, ok && len(rest) == 0
}
