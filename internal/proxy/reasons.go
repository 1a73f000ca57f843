package proxy

// CloseReason records why a connection was closed. Every disconnect has one.
type CloseReason uint8

// Close reasons.
const (
	ReasonNone CloseReason = iota
	ReasonClientTerminate
	ReasonClientEOF
	ReasonClientProtocol
	ReasonClientTooMany
	ReasonAuthFailed
	ReasonLoginTimeout
	ReasonWaitTimeout
	ReasonIdleTxTimeout
	ReasonServerLost
	ReasonServerLoginFailed
	ReasonServerIdleTimeout
	ReasonServerLifetime
	ReasonServerDirty
	ReasonServerProtocol
	ReasonShutdown
	ReasonCancelDone
	ReasonAdmin
	ReasonStatementMode
	ReasonNotSupported
	ReasonConnectFailed
	reasonCount
)

var reasonNames = [...]string{
	ReasonNone:              "none",
	ReasonClientTerminate:   "client_terminate",
	ReasonClientEOF:         "client_eof",
	ReasonClientProtocol:    "client_protocol_error",
	ReasonClientTooMany:     "too_many_clients",
	ReasonAuthFailed:        "auth_failed",
	ReasonLoginTimeout:      "client_login_timeout",
	ReasonWaitTimeout:       "query_wait_timeout",
	ReasonIdleTxTimeout:     "idle_transaction_timeout",
	ReasonServerLost:        "server_lost",
	ReasonServerLoginFailed: "server_login_failed",
	ReasonServerIdleTimeout: "server_idle_timeout",
	ReasonServerLifetime:    "server_lifetime",
	ReasonServerDirty:       "server_dirty",
	ReasonServerProtocol:    "server_protocol_error",
	ReasonShutdown:          "shutdown",
	ReasonCancelDone:        "cancel_done",
	ReasonAdmin:             "admin",
	ReasonStatementMode:     "statement_mode_violation",
	ReasonNotSupported:      "not_supported",
	ReasonConnectFailed:     "connect_failed",
}

func (r CloseReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// SQLSTATE codes used for refusals.
const (
	codeProtocolViolation   = "08P01"
	codeConnectionFailure   = "08006"
	codeCannotConnectNow    = "57P03"
	codeTooManyConnections  = "53300"
	codeInvalidPassword     = "28P01"
	codeInvalidAuthSpec     = "28000"
	codeFeatureNotSupported = "0A000"
	codeQueryCanceled       = "57014"
	codeAdminShutdown       = "57P01"
	codeIdleInTxTimeout     = "25P03"
	codeInvalidParamValue   = "22023"
)
