package pgproto

// Frontend (client → server) message types.
const (
	MsgBind         byte = 'B'
	MsgClose        byte = 'C'
	MsgCopyData     byte = 'd'
	MsgCopyDone     byte = 'c'
	MsgCopyFail     byte = 'f'
	MsgDescribe     byte = 'D'
	MsgExecute      byte = 'E'
	MsgFlush        byte = 'H'
	MsgFunctionCall byte = 'F'
	MsgParse        byte = 'P'
	MsgPassword     byte = 'p' // also SASLInitialResponse, SASLResponse, GSSResponse
	MsgQuery        byte = 'Q'
	MsgSync         byte = 'S'
	MsgTerminate    byte = 'X'
)

// Backend (server → client) message types.
const (
	MsgAuthentication   byte = 'R'
	MsgBackendKeyData   byte = 'K'
	MsgBindComplete     byte = '2'
	MsgCloseComplete    byte = '3'
	MsgCommandComplete  byte = 'C'
	MsgCopyInResponse   byte = 'G'
	MsgCopyOutResponse  byte = 'H'
	MsgCopyBothResponse byte = 'W'
	MsgDataRow          byte = 'D'
	MsgEmptyQuery       byte = 'I'
	MsgErrorResponse    byte = 'E'
	MsgFunctionResult   byte = 'V'
	MsgNegotiateVersion byte = 'v'
	MsgNoData           byte = 'n'
	MsgNoticeResponse   byte = 'N'
	MsgNotification     byte = 'A'
	MsgParameterDesc    byte = 't'
	MsgParameterStatus  byte = 'S'
	MsgParseComplete    byte = '1'
	MsgPortalSuspended  byte = 's'
	MsgReadyForQuery    byte = 'Z'
	MsgRowDescription   byte = 'T'
)

// Authentication request codes (the int32 after an 'R').
const (
	AuthOK                = 0
	AuthCleartextPassword = 3
	AuthMD5Password       = 5
	AuthSASL              = 10
	AuthSASLContinue      = 11
	AuthSASLFinal         = 12
)

// Startup packet codes.
const (
	ProtocolVersion3 uint32 = 3 << 16
	CodeCancel       uint32 = 80877102
	CodeSSL          uint32 = 80877103
	CodeGSSENC       uint32 = 80877104
)

// Limits.
const (
	// MaxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
	MaxStartupPacket = 10000
	// HeaderLen is the size of a regular message header (type + int32 length).
	HeaderLen = 5
)

// Transaction status bytes of ReadyForQuery.
const (
	TxIdle   byte = 'I'
	TxActive byte = 'T'
	TxFailed byte = 'E'
)

// IsFrontendType reports whether t is a message type a client may send after startup.
func IsFrontendType(t byte) bool {
	switch t {
	case MsgBind, MsgClose, MsgCopyData, MsgCopyDone, MsgCopyFail, MsgDescribe,
		MsgExecute, MsgFlush, MsgFunctionCall, MsgParse, MsgPassword, MsgQuery,
		MsgSync, MsgTerminate:
		return true
	}
	return false
}
