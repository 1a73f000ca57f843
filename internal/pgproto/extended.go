package pgproto

import "encoding/binary"

// ParseMsg is a decoded Parse message body. Fields alias the input.
type ParseMsg struct {
	Name  []byte
	Query []byte
	Types []byte // int16 count followed by count int32 OIDs, raw
}

// DecodeParse decodes a Parse body.
func DecodeParse(body []byte) (p ParseMsg, ok bool) {
	p.Name, body, ok = cstring(body)
	if !ok {
		return p, false
	}
	p.Query, body, ok = cstring(body)
	if !ok || len(body) < 2 {
		return p, false
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) != 2+4*n {
		return p, false
	}
	p.Types = body
	return p, true
}

// AppendParse appends a Parse message; types is the raw count+OIDs part.
func AppendParse(dst []byte, name string, query, types []byte) []byte {
	dst, off := Begin(dst, MsgParse)
	dst = AppendCString(dst, name)
	dst = append(dst, query...)
	dst = append(dst, 0)
	if len(types) == 0 {
		dst = append(dst, 0, 0)
	} else {
		dst = append(dst, types...)
	}
	return Finish(dst, off)
}

// BindStatement returns the portal name, the statement name and the rest of a
// Bind body (parameter formats, values, result formats).
func BindStatement(body []byte) (portal, stmt, rest []byte, ok bool) {
	portal, body, ok = cstring(body)
	if !ok {
		return
	}
	stmt, rest, ok = cstring(body)
	return
}

// AppendBind appends a Bind message with the given portal and statement
// names and the raw rest of an original Bind body.
func AppendBind(dst []byte, portal []byte, stmt string, rest []byte) []byte {
	dst, off := Begin(dst, MsgBind)
	dst = append(dst, portal...)
	dst = append(dst, 0)
	dst = AppendCString(dst, stmt)
	dst = append(dst, rest...)
	return Finish(dst, off)
}

// Target decodes the body of Describe or Close: 'S' (statement) or 'P'
// (portal) and a name.
func Target(body []byte) (kind byte, name []byte, ok bool) {
	if len(body) < 2 {
		return 0, nil, false
	}
	name, rest, ok := cstring(body[1:])
	return body[0], name, ok && len(rest) == 0
}

// AppendTarget appends a Describe or Close message (typ 'D' or 'C').
func AppendTarget(dst []byte, typ, kind byte, name string) []byte {
	dst, off := Begin(dst, typ)
	dst = append(dst, kind)
	dst = AppendCString(dst, name)
	return Finish(dst, off)
}

// AppendCommandComplete appends a CommandComplete with the given tag.
func AppendCommandComplete(dst []byte, tag string) []byte {
	dst, off := Begin(dst, MsgCommandComplete)
	dst = AppendCString(dst, tag)
	return Finish(dst, off)
}
