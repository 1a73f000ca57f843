package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

type authStep uint8

const (
	authNone authStep = iota
	authSASLInitial
	authSASLFinal
	authMD5
	authLookup // waiting for auth_query
)

// maxAuthMessage bounds a password/SASL message from a client.
const maxAuthMessage = 8192

// onLoginData accumulates and handles startup-phase bytes.
func (c *Client) onLoginData(b []byte) {
	if c.stash == nil {
		c.stash = c.loop.getBuf()
	}
	c.stash = append(c.stash, b...)
	for c.state == ClientStartup || c.state == ClientAuth {
		var n int
		if c.state == ClientStartup {
			n = c.handleStartupPacket()
		} else {
			n = c.handleAuthMessage()
		}
		if n <= 0 || c.state == ClientClosed {
			return
		}
		c.stash = c.stash[:copy(c.stash, c.stash[n:])]
	}
	// Logged in (or waiting for the welcome): keep any early bytes stashed.
	if len(c.stash) == 0 {
		c.loop.putBuf(c.stash)
		c.stash = nil
	} else if c.state == ClientIdle {
		c.startRequest()
	}
}

// handleStartupPacket handles one startup-phase packet; it returns the bytes consumed.
func (c *Client) handleStartupPacket() int {
	n, code, body, err := pgproto.StartupFrame(c.stash)
	if err != nil {
		c.fatal(codeProtocolViolation, err.Error(), ReasonClientProtocol)
		return 0
	}
	if n == 0 {
		return 0
	}
	switch code {
	case pgproto.CodeSSL, pgproto.CodeGSSENC:
		c.send([]byte{'N'})
		return n
	case pgproto.CodeCancel:
		if pid, secret, ok := pgproto.CancelKeys(body); ok {
			c.loop.cancelRequest(pid, secret)
		}
		c.close(ReasonCancelDone)
		return 0
	}
	if code>>16 != 3 {
		c.fatal(codeFeatureNotSupported, "unsupported frontend protocol "+itoa(int(code>>16))+"."+itoa(int(code&0xffff))+": server supports 3.0 to 3.0", ReasonClientProtocol)
		return 0
	}
	if !c.parseStartup(body, code) {
		return 0
	}
	c.beginAuth()
	return n
}

// parseStartup reads the startup parameters; it returns false if the client was refused.
func (c *Client) parseStartup(body []byte, code uint32) bool {
	l := c.loop
	var kv []string
	var unknownOpts []string
	var user, db []byte
	bad := ""
	err := pgproto.StartupParams(body, func(k, v []byte) {
		switch string(k) {
		case "user":
			user = v
		case "database":
			db = v
		case "replication":
			if s := strings.ToLower(string(v)); s != "false" && s != "off" && s != "0" && s != "no" {
				bad = "replication connections are not supported by poolmgr"
			}
		case "options":
			for _, o := range splitOptions(string(v)) {
				k, v, ok := parseOption(o)
				if !ok {
					bad = "unsupported startup option " + quote(o)
					return
				}
				kv = append(kv, strings.ToLower(k), v)
			}
		default:
			if bytes.HasPrefix(k, []byte("_pq_.")) {
				unknownOpts = append(unknownOpts, string(k))
				return
			}
			if !validParamName(string(k)) {
				bad = "invalid startup parameter name " + quote(string(k))
				return
			}
			kv = append(kv, strings.ToLower(string(k)), string(v))
		}
	})
	if err != nil {
		c.fatal(codeProtocolViolation, "invalid startup packet layout: expected terminator as last byte", ReasonClientProtocol)
		return false
	}
	if bad != "" {
		c.fatal(codeFeatureNotSupported, bad, ReasonNotSupported)
		return false
	}
	if len(user) == 0 {
		c.fatal(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet", ReasonClientProtocol)
		return false
	}
	if len(db) == 0 {
		db = user
	}
	if minor := code & 0xffff; minor > 0 || len(unknownOpts) > 0 {
		c.send(appendNegotiateVersion(l.scratch[:0], 0, unknownOpts))
	}
	if c.login == nil {
		c.login = &clientLogin{}
	}
	c.login.user = l.pi.str(user)
	c.login.database = l.pi.str(db)
	for i := 0; i < len(kv); i += 2 {
		kv[i], kv[i+1] = l.pi.str([]byte(kv[i])), l.pi.str([]byte(kv[i+1]))
	}
	c.params = l.pi.make(kv)
	c.startParams = c.params
	return true
}

// splitOptions splits a libpq "options" value on unescaped spaces.
func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	esc := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case esc:
			cur.WriteByte(ch)
			esc = false
		case ch == '\\':
			esc = true
		case ch == ' ' || ch == '\t':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(ch)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	// Join "-c" with its argument.
	var res []string
	for i := 0; i < len(out); i++ {
		if out[i] == "-c" && i+1 < len(out) {
			res = append(res, "-c"+out[i+1])
			i++
			continue
		}
		res = append(res, out[i])
	}
	return res
}

// parseOption accepts "-ckey=value" and "--key=value".
func parseOption(o string) (k, v string, ok bool) {
	switch {
	case strings.HasPrefix(o, "--"):
		o = o[2:]
	case strings.HasPrefix(o, "-c"):
		o = o[2:]
	default:
		return "", "", false
	}
	k, v, ok = strings.Cut(o, "=")
	k = strings.ReplaceAll(k, "-", "_")
	return k, v, ok && validParamName(k)
}

func appendNegotiateVersion(dst []byte, minor uint32, opts []string) []byte {
	dst, off := pgproto.Begin(dst, pgproto.MsgNegotiateVersion)
	dst = binary.BigEndian.AppendUint32(dst, 3<<16|minor)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(opts)))
	for _, o := range opts {
		dst = pgproto.AppendCString(dst, o)
	}
	return pgproto.Finish(dst, off)
}

// beginAuth checks limits and starts the authentication exchange.
func (c *Client) beginAuth() {
	l := c.loop
	o := l.opts()
	if l.sh.ShuttingDown() {
		c.fatal(codeCannotConnectNow, "the database system is shutting down", ReasonShutdown)
		return
	}
	if l.sh.memHigh.Load() {
		c.fatal(codeTooManyConnections, "too many client connections: poolmgr is near its memory limit (GOMEMLIMIT)", ReasonClientTooMany)
		return
	}
	if l.sh.Clients() > o.MaxClients {
		c.fatal(codeTooManyConnections, "too many client connections (max_client_connections)", ReasonClientTooMany)
		return
	}
	c.state = ClientAuth
	c.login.secret, c.login.haveSecret = o.Secrets[c.user()]
	if !c.login.haveSecret && o.AuthType != AuthTrust && o.AuthUser != "" && c.user() != o.AuthUser {
		c.login.authState = authLookup
		l.lookupSecret(c)
		return
	}
	c.startAuthExchange()
}

// startAuthExchange sends the first authentication request for the
// configured method, once the client's secret (if any) is known.
func (c *Client) startAuthExchange() {
	l := c.loop
	switch l.opts().AuthType {
	case AuthTrust:
		c.authOK(nil)
	case AuthMD5:
		if !c.login.haveSecret || c.login.secret.Kind != auth.SecretScram {
			c.login.md5salt = auth.NewMD5Challenge(l.rnd)
			c.login.authState = authMD5
			c.send(pgproto.AppendAuth(l.scratch[:0], pgproto.AuthMD5Password, c.login.md5salt[:]))
			return
		}
		fallthrough // SCRAM secret: md5 is impossible, use SCRAM as PgBouncer does
	default:
		var err error
		if c.login.haveSecret {
			c.login.scram, err = auth.NewScramServer(c.user(), c.login.secret, l.rnd)
		}
		if !c.login.haveSecret || err != nil {
			c.login.haveSecret = false
			c.login.scram, _ = auth.NewScramServerUnknownUserStable(c.user(), mockKey, l.rnd)
		}
		c.login.authState = authSASLInitial
		c.send(pgproto.AppendAuth(l.scratch[:0], pgproto.AuthSASL, c.login.scram.Mechanisms()))
	}
}

// handleAuthMessage handles one message of the authentication exchange.
func (c *Client) handleAuthMessage() int {
	typ, total, complete, err := pgproto.Frame(c.stash, maxAuthMessage)
	if err != nil {
		c.fatal(codeProtocolViolation, "invalid authentication message", ReasonClientProtocol)
		return 0
	}
	if !complete {
		return 0
	}
	if typ == pgproto.MsgTerminate {
		c.close(ReasonClientTerminate)
		return 0
	}
	if c.login.authState == authLookup {
		return 0 // the client speaks before we asked: keep it until the lookup ends
	}
	if typ != pgproto.MsgPassword {
		c.fatal(codeProtocolViolation, "expected password response, got message type "+quoteByte(typ), ReasonClientProtocol)
		return 0
	}
	body := c.stash[pgproto.HeaderLen:total]
	l := c.loop
	switch c.login.authState {
	case authMD5:
		resp, _, ok := bytes.Cut(body, []byte{0})
		if !ok || !c.login.haveSecret || auth.VerifyMD5(c.login.secret, c.user(), c.login.md5salt, string(resp)) != nil {
			c.authFailed()
			return 0
		}
		c.authOK(nil)
	case authSASLInitial:
		sf, err := c.login.scram.HandleInitial(body)
		if err != nil {
			c.authError(err)
			return 0
		}
		c.login.authState = authSASLFinal
		c.send(pgproto.AppendAuth(l.scratch[:0], pgproto.AuthSASLContinue, sf))
	case authSASLFinal:
		fin, err := c.login.scram.HandleFinal(body)
		if err != nil || !c.login.haveSecret {
			c.authError(err)
			return 0
		}
		ck := c.login.scram.ClientKey()
		out := pgproto.AppendAuth(l.scratch[:0], pgproto.AuthSASLFinal, fin)
		c.send(out)
		c.authOK(&ck)
	default:
		c.fatal(codeProtocolViolation, "unexpected password message", ReasonClientProtocol)
		return 0
	}
	return total
}

func (c *Client) authError(err error) {
	if err == nil || errors.Is(err, auth.ErrPasswordMismatch) {
		c.authFailed()
		return
	}
	c.fatal(codeProtocolViolation, "malformed SCRAM message: "+err.Error(), ReasonClientProtocol)
}

func (c *Client) authFailed() {
	c.fatal(codeInvalidPassword, "password authentication failed for user \""+c.user()+"\"", ReasonAuthFailed)
}

// authOK finishes authentication: it records how to log in to the backend as
// this user, registers the client's cancel key and welcomes it (or waits for
// the pool's first server login to learn the server parameters).
func (c *Client) authOK(clientKey *[32]byte) {
	l := c.loop
	lg := c.login
	c.login = nil // logged in: the login state goes (user and database are the pool's)
	c.pool = l.pool(lg.database, lg.user)
	creds := &auth.BackendCreds{User: lg.user}
	if lg.haveSecret {
		switch lg.secret.Kind {
		case auth.SecretPlain:
			creds.Plain = lg.secret.Plain
		case auth.SecretMD5:
			creds.MD5 = lg.secret.MD5
		case auth.SecretScram:
			if clientKey != nil {
				ck := *clientKey
				sk := lg.secret.Scram.ServerKey
				creds.ClientKey, creds.ServerKey = &ck, &sk
			}
		}
	}
	if cur := c.pool.sh.creds.Load(); cur == nil || !sameCreds(cur, creds) {
		if creds.Plain != "" || creds.MD5 != "" || creds.ClientKey != nil || cur == nil {
			c.pool.sh.creds.Store(creds)
		}
	}
	l.sh.cancels.register(c)
	l.logins.remove(c)
	if isAdminDB(c.database()) {
		c.adminWelcome()
		return
	}
	if c.pool.sh.welcome.Load() != nil {
		c.sendWelcome(false)
		return
	}
	c.state = ClientWelcome
	c.pool.welcomeWait.push(c)
	l.growPool(c.pool)
}

func sameCreds(a, b *auth.BackendCreds) bool {
	return a.Plain == b.Plain && a.MD5 == b.MD5 && (a.ClientKey == nil) == (b.ClientKey == nil) &&
		(a.ClientKey == nil || *a.ClientKey == *b.ClientKey)
}

// sendWelcome sends AuthenticationOk, the server parameters (with the
// client's own values where it set them), its cancel key and ReadyForQuery.
//
// fromWait is true when the welcome comes after the pool's first server
// login; bytes the client sent meanwhile are then started as a request.
func (c *Client) sendWelcome(fromWait bool) {
	l := c.loop
	out := pgproto.AppendAuth(l.scratch[:0], pgproto.AuthOK, nil)
	w := *c.pool.sh.welcome.Load()
	for len(w) > 0 {
		_, total, ok, err := pgproto.Frame(w, 0)
		if err != nil || !ok {
			break
		}
		k, v, _ := pgproto.ParameterStatus(w[pgproto.HeaderLen:total])
		if mine, ok := c.params.Get(strings.ToLower(string(k))); ok {
			out = pgproto.AppendParameterStatus(out, string(k), mine)
		} else {
			out = pgproto.AppendParameterStatus(out, string(k), string(v))
		}
		w = w[total:]
	}
	out = pgproto.AppendBackendKeyData(out, c.cancelPID, c.cancelSecret)
	out = pgproto.AppendReadyForQuery(out, pgproto.TxIdle)
	l.scratch = out[:0]
	c.send(out)
	c.state = ClientIdle
	if o := l.opts(); o.LogConnections {
		o.Log.Info("client logged in", "remote", c.remote().String(), "user", c.user(), "db", c.database())
	}
	if fromWait && len(c.stash) > 0 {
		c.startRequest()
	}
}

// mockKey derives the stable fake salts of unknown users (like PostgreSQL's
// mock authentication), so two attempts do not reveal that a user is unknown.
var mockKey = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

func quote(s string) string { return "\"" + s + "\"" }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
