package pgproto

import "encoding/binary"

// Begin appends a message header with a placeholder length and returns the
// offset to pass to Finish.
func Begin(dst []byte, typ byte) ([]byte, int) {
	off := len(dst)
	return append(dst, typ, 0, 0, 0, 0), off
}

// Finish writes the length of the message that Begin started at off.
func Finish(dst []byte, off int) []byte {
	binary.BigEndian.PutUint32(dst[off+1:], uint32(len(dst)-off-1))
	return dst
}

// AppendCString appends s and a NUL terminator.
func AppendCString(dst []byte, s string) []byte {
	dst = append(dst, s...)
	return append(dst, 0)
}

// AppendAuth appends an Authentication message with the given code and extra data.
func AppendAuth(dst []byte, code uint32, data []byte) []byte {
	dst, off := Begin(dst, MsgAuthentication)
	dst = binary.BigEndian.AppendUint32(dst, code)
	dst = append(dst, data...)
	return Finish(dst, off)
}

// AppendParameterStatus appends a ParameterStatus message.
func AppendParameterStatus(dst []byte, k, v string) []byte {
	dst, off := Begin(dst, MsgParameterStatus)
	dst = AppendCString(dst, k)
	dst = AppendCString(dst, v)
	return Finish(dst, off)
}

// AppendBackendKeyData appends a BackendKeyData message.
func AppendBackendKeyData(dst []byte, pid, secret uint32) []byte {
	dst = append(dst, MsgBackendKeyData, 0, 0, 0, 12)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return binary.BigEndian.AppendUint32(dst, secret)
}

// AppendReadyForQuery appends a ReadyForQuery message with the given status.
func AppendReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, MsgReadyForQuery, 0, 0, 0, 5, status)
}

// AppendQuery appends a simple Query message.
func AppendQuery(dst []byte, sql string) []byte {
	dst, off := Begin(dst, MsgQuery)
	dst = AppendCString(dst, sql)
	return Finish(dst, off)
}

// AppendTerminate appends a Terminate message.
func AppendTerminate(dst []byte) []byte { return append(dst, MsgTerminate, 0, 0, 0, 4) }

// AppendSync appends a Sync message.
func AppendSync(dst []byte) []byte { return append(dst, MsgSync, 0, 0, 0, 4) }

// AppendPassword appends a PasswordMessage (also used for SASL responses) with raw body.
func AppendPassword(dst []byte, body []byte) []byte {
	dst, off := Begin(dst, MsgPassword)
	dst = append(dst, body...)
	return Finish(dst, off)
}

// Severity of an ErrorResponse / NoticeResponse.
const (
	SevError = "ERROR"
	SevFatal = "FATAL"
)

// AppendError appends an ErrorResponse with severity, SQLSTATE code and message.
func AppendError(dst []byte, severity, code, msg string) []byte {
	return AppendErrorDetail(dst, severity, code, msg, "")
}

// AppendErrorDetail is AppendError with an optional DETAIL/HINT line.
func AppendErrorDetail(dst []byte, severity, code, msg, hint string) []byte {
	dst, off := Begin(dst, MsgErrorResponse)
	dst = append(dst, 'S')
	dst = AppendCString(dst, severity)
	dst = append(dst, 'V')
	dst = AppendCString(dst, severity)
	dst = append(dst, 'C')
	dst = AppendCString(dst, code)
	dst = append(dst, 'M')
	dst = AppendCString(dst, msg)
	if hint != "" {
		dst = append(dst, 'H')
		dst = AppendCString(dst, hint)
	}
	dst = append(dst, 0)
	return Finish(dst, off)
}

// AppendNotice appends a NoticeResponse with severity, code and message.
func AppendNotice(dst []byte, severity, code, msg string) []byte {
	start := len(dst)
	dst = AppendError(dst, severity, code, msg)
	dst[start] = MsgNoticeResponse
	return dst
}
