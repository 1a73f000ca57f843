package storm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Phase is where a Client is in its connection's life.
type Phase uint8

const (
	PhaseNew   Phase = iota // nothing sent yet
	PhaseAuth               // StartupMessage sent: answering Authentication requests
	PhaseLogin              // AuthenticationOk received: waiting for ReadyForQuery
	PhaseIdle               // logged in, no query running
	PhaseQuery              // a query is running
	PhaseDone               // failed or terminated: feed nothing more
)

func (p Phase) String() string {
	switch p {
	case PhaseNew:
		return "new"
	case PhaseAuth:
		return "auth"
	case PhaseLogin:
		return "login"
	case PhaseIdle:
		return "idle"
	case PhaseQuery:
		return "query"
	case PhaseDone:
		return "done"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Events reported by Client.Feed (a bit set: one Feed may report several).
const (
	EvLoggedIn    uint8 = 1 << iota // first ReadyForQuery: the login is complete
	EvQueryDone                     // ReadyForQuery ending a query (Result.Code set if it failed)
	EvServerError                   // an ErrorResponse arrived: Result.Code is its SQLSTATE
	EvFatal                         // the server will close the connection (login error, FATAL): close it
)

// ErrProtocol wraps a malformed or unexpected message from the server.
var ErrProtocol = errors.New("protocol violation")

// Result is what one Client.Feed produced.
type Result struct {
	// Out holds bytes to send (authentication replies). It aliases the
	// Proto's scratch buffer: copy it before the next Feed on that Proto.
	Out    []byte
	Events uint8
	// Code is the SQLSTATE of the first ErrorResponse in this Feed
	// (valid when Events has EvServerError).
	Code [5]byte
	// Severity is 'F' for FATAL/PANIC, 'E' for ERROR (with EvServerError).
	Severity byte
	// Message is the server's message text (with EvServerError).
	Message string
	// Err ends the connection: a protocol violation (wraps ErrProtocol) or
	// an authentication failure detected on our side (internal/auth errors:
	// wrong server signature, unsupported method, missing credentials).
	Err error
}

// CodeString returns Code as a string ("" without EvServerError).
func (r *Result) CodeString() string {
	if r.Events&EvServerError == 0 {
		return ""
	}
	return string(r.Code[:])
}

// Client is the client side of one PostgreSQL connection as a small state
// machine over bytes: it does no I/O, holds no goroutine and, once logged
// in, no heap memory (about 48 bytes). Start it, send what it asks, and Feed
// it whatever the server sends, in any chunking. Not safe for concurrent
// use.
type Client struct {
	auth  *auth.BackendAuth // during authentication only
	acc   []byte            // body of a message split across Feeds (R, E, Z only)
	need  uint32            // body bytes of the current message still to come
	hdr   [pgproto.HeaderLen]byte
	hdrN  uint8
	phase Phase
	keep  bool // the current body is accumulated in acc (else skipped)
	keyed bool // auth was created with the cached SCRAM ClientKey
}

// Phase returns the client's phase.
func (c *Client) Phase() Phase { return c.phase }

// Start moves a new client to PhaseAuth; the caller sends
// Proto.StartupMessage. It reports false if the client was not new.
func (c *Client) Start() bool {
	if c.phase != PhaseNew {
		return false
	}
	c.phase = PhaseAuth
	return true
}

// StartQuery moves an idle client to PhaseQuery; the caller sends
// Proto.QueryMessage. It reports false if the client is not idle.
func (c *Client) StartQuery() bool {
	if c.phase != PhaseIdle {
		return false
	}
	c.phase = PhaseQuery
	return true
}

// Finish marks the client done (terminated or closed) and drops its state.
func (c *Client) Finish() { *c = Client{phase: PhaseDone} }

// Feed consumes bytes received from the server.
func (c *Client) Feed(p *Proto, data []byte) Result {
	res := Result{}
	p.out = p.out[:0]
	for len(data) > 0 && res.Err == nil && c.phase != PhaseDone {
		if c.need > 0 {
			n := min(int(c.need), len(data))
			if c.keep {
				c.acc = append(c.acc, data[:n]...)
			}
			c.need -= uint32(n)
			data = data[n:]
			if c.need == 0 && c.keep {
				body := c.acc
				c.acc, c.keep = nil, false
				c.message(p, c.hdr[0], body, &res)
			}
			continue
		}
		var body []byte
		var typ byte
		var blen int
		if c.hdrN == 0 && len(data) >= pgproto.HeaderLen {
			typ = data[0]
			blen = int(int32(binary.BigEndian.Uint32(data[1:]))) - 4
			c.hdr = [pgproto.HeaderLen]byte(data[:pgproto.HeaderLen])
			data = data[pgproto.HeaderLen:]
		} else {
			k := copy(c.hdr[c.hdrN:], data)
			c.hdrN += uint8(k)
			data = data[k:]
			if c.hdrN < pgproto.HeaderLen {
				break
			}
			c.hdrN = 0
			typ = c.hdr[0]
			blen = int(int32(binary.BigEndian.Uint32(c.hdr[1:]))) - 4
		}
		if blen < 0 {
			res.Err = fmt.Errorf("%w: message %q with invalid length %d", ErrProtocol, typ, blen+4)
			break
		}
		if !wanted(typ) {
			c.need, c.keep = uint32(blen), false
			continue
		}
		if blen > p.maxBody {
			res.Err = fmt.Errorf("%w: message %q of %d bytes is larger than %d", ErrProtocol, typ, blen, p.maxBody)
			break
		}
		if len(data) >= blen { // whole body here: no copy
			body, data = data[:blen], data[blen:]
			c.message(p, typ, body, &res)
			continue
		}
		c.need, c.keep = uint32(blen), true
		c.acc = make([]byte, 0, blen)
	}
	if res.Err != nil {
		c.auth, c.acc = nil, nil
		c.phase = PhaseDone
	}
	res.Out = p.out
	return res
}

// wanted reports whether a message body matters to the client; the others
// (row descriptions, data rows, parameter status, notices...) are skipped
// without being buffered.
func wanted(typ byte) bool {
	switch typ {
	case pgproto.MsgAuthentication, pgproto.MsgErrorResponse, pgproto.MsgReadyForQuery:
		return true
	}
	return false
}

func (c *Client) message(p *Proto, typ byte, body []byte, res *Result) {
	switch typ {
	case pgproto.MsgAuthentication:
		c.authMessage(p, body, res)
	case pgproto.MsgErrorResponse:
		if res.Events&EvServerError == 0 {
			res.Events |= EvServerError
			copy(res.Code[:], pgproto.ErrorField(body, 'C'))
			res.Severity = 'E'
			res.Message = string(pgproto.ErrorField(body, 'M'))
		}
		sev := pgproto.ErrorField(body, 'V')
		if sev == nil {
			sev = pgproto.ErrorField(body, 'S')
		}
		fatal := string(sev) == "FATAL" || string(sev) == "PANIC"
		if fatal {
			res.Severity = 'F'
		}
		if fatal || c.phase == PhaseAuth || c.phase == PhaseLogin {
			// During login every error ends the connection.
			res.Events |= EvFatal
			c.auth, c.acc = nil, nil
			c.phase = PhaseDone
		}
	case pgproto.MsgReadyForQuery:
		switch c.phase {
		case PhaseLogin:
			c.phase = PhaseIdle
			res.Events |= EvLoggedIn
		case PhaseQuery:
			c.phase = PhaseIdle
			res.Events |= EvQueryDone
		case PhaseIdle:
			// A stray ReadyForQuery (e.g. after an asynchronous error): harmless.
		default:
			res.Err = fmt.Errorf("%w: ReadyForQuery before authentication completed", ErrProtocol)
		}
	}
}

func (c *Client) authMessage(p *Proto, body []byte, res *Result) {
	if c.phase != PhaseAuth {
		res.Err = fmt.Errorf("%w: Authentication request in phase %s", ErrProtocol, c.phase)
		return
	}
	code, data, ok := pgproto.AuthCode(body)
	if !ok {
		res.Err = fmt.Errorf("%w: short Authentication message", ErrProtocol)
		return
	}
	if code == auth.AuthOK && c.auth == nil { // trust
		c.phase = PhaseLogin
		p.counts.Trust++
		return
	}
	if c.auth == nil {
		c.auth, c.keyed = p.newBackendAuth()
	}
	if code == auth.AuthSASLContinue {
		p.noteServerFirst(data, c.keyed)
	}
	reply, err := c.auth.Step(code, data)
	if err != nil {
		res.Err = err
		return
	}
	if code == auth.AuthOK {
		switch c.auth.Method() {
		case "md5":
			p.counts.MD5++
		case "password":
			p.counts.Password++
		default:
			p.counts.SCRAM++
		}
		c.auth = nil
		c.phase = PhaseLogin
		return
	}
	p.out = append(p.out, reply...)
}

// AuthCounts counts successful logins by method, and how SCRAM proofs were
// computed.
type AuthCounts struct {
	Trust, Password, MD5, SCRAM int64
	// ScramCached: SCRAM exchanges answered from the cached ClientKey
	// (a few HMACs); ScramDerived: exchanges that needed PBKDF2 (the
	// server's salt was new, e.g. a proxy with a plaintext userlist, which
	// makes a fresh salt per login).
	ScramCached, ScramDerived int64
}

// Add adds o to a.
func (a *AuthCounts) Add(o AuthCounts) {
	a.Trust += o.Trust
	a.Password += o.Password
	a.MD5 += o.MD5
	a.SCRAM += o.SCRAM
	a.ScramCached += o.ScramCached
	a.ScramDerived += o.ScramDerived
}

// Proto is what the connections of one worker share: the pre-encoded
// StartupMessage and Query messages, the credentials, the SCRAM key cache
// and a scratch buffer. Not safe for concurrent use: one per worker
// goroutine (the KeyCache may be shared).
type Proto struct {
	user, password string
	startup        []byte
	query          []byte
	rnd            io.Reader
	maxBody        int
	out            []byte
	keys           *KeyCache
	counts         AuthCounts
}

// KeyCache holds the SCRAM ClientKey of the server's verifier once the
// same salt has been seen twice in a row. Safe for concurrent use: the
// workers of a run share one.
type KeyCache struct {
	key  atomic.Pointer[scramKey] // immutable once published
	mu   sync.Mutex
	cand *scramKey // salt/iterations seen once, keys not derived yet
}

// Cached reports whether a ClientKey is cached.
func (k *KeyCache) Cached() bool { return k.key.Load() != nil }

type scramKey struct {
	salt      []byte
	iter      int
	clientKey [32]byte
	serverKey [32]byte
}

// Login is what a client logs in with.
type Login struct {
	User, Password, Database string
	AppName                  string // application_name ("" = none)
	Query                    string // the query clients run
}

// NewProto pre-encodes the messages of l. rnd supplies SCRAM nonces (nil:
// crypto/rand); keys may be shared between Protos (nil: a private one).
func NewProto(l Login, rnd io.Reader, keys *KeyCache) *Proto {
	if keys == nil {
		keys = &KeyCache{}
	}
	kv := []string{"user", l.User, "database", l.Database}
	if l.AppName != "" {
		kv = append(kv, "application_name", l.AppName)
	}
	return &Proto{
		user:     l.User,
		password: l.Password,
		startup:  pgproto.AppendStartupMessage(nil, kv...),
		query:    pgproto.AppendQuery(nil, l.Query),
		rnd:      rnd,
		maxBody:  1 << 20,
		out:      make([]byte, 0, 512),
		keys:     keys,
	}
}

// StartupMessage returns the encoded StartupMessage (do not modify).
func (p *Proto) StartupMessage() []byte { return p.startup }

// QueryMessage returns the encoded simple Query message (do not modify).
func (p *Proto) QueryMessage() []byte { return p.query }

// TerminateMessage returns an encoded Terminate message.
func TerminateMessage() []byte { return pgproto.AppendTerminate(nil) }

// Counts returns the authentication counters.
func (p *Proto) Counts() AuthCounts { return p.counts }

func (p *Proto) newBackendAuth() (*auth.BackendAuth, bool) {
	creds := auth.BackendCreds{User: p.user, Plain: p.password}
	k := p.keys.key.Load()
	if k != nil {
		creds.ClientKey = &k.clientKey
		creds.ServerKey = &k.serverKey
		creds.ScramSalt = k.salt
		creds.ScramIterations = k.iter
	}
	return auth.NewBackendAuth(creds, p.rnd), k != nil
}

// noteServerFirst watches the salt and iteration count of each SCRAM
// server-first-message. PostgreSQL (and a proxy holding the SCRAM secret)
// sends the same salt every time: after seeing a salt twice in a row, the
// Proto derives its ClientKey once (PBKDF2) and later logins answer from it
// with a few HMACs instead of one PBKDF2 each. A proxy deriving a verifier
// from a plaintext password sends a new salt every time; then nothing is
// cached and every login runs PBKDF2, on both sides.
// keyed says whether this exchange's BackendAuth holds the cached key.
func (p *Proto) noteServerFirst(data []byte, keyed bool) {
	salt, iter, ok := parseServerFirst(data)
	if !ok {
		return // BackendAuth reports the malformed message
	}
	kc := p.keys
	if k := kc.key.Load(); k != nil && k.iter == iter && bytes.Equal(k.salt, salt) {
		if keyed {
			p.counts.ScramCached++
		} else {
			p.counts.ScramDerived++ // created before the key was cached
		}
		return
	}
	p.counts.ScramDerived++
	kc.mu.Lock()
	c := kc.cand
	if c == nil || c.iter != iter || !bytes.Equal(c.salt, salt) {
		kc.cand = &scramKey{salt: salt, iter: iter}
		kc.mu.Unlock()
		return
	}
	kc.cand = nil
	kc.mu.Unlock()
	ck, err := auth.ScramClientKey(p.password, salt, iter)
	if err != nil {
		return
	}
	sec, err := auth.NewScramSecret(p.password, salt, iter)
	if err != nil {
		return
	}
	kc.key.Store(&scramKey{salt: salt, iter: iter, clientKey: ck, serverKey: sec.ServerKey})
}

// parseServerFirst extracts s= (salt) and i= (iterations) of a SCRAM
// server-first-message "r=...,s=...,i=...". The salt is a fresh slice.
func parseServerFirst(data []byte) (salt []byte, iter int, ok bool) {
	var s, i []byte
	for rest := data; len(rest) > 0; {
		var attr []byte
		if k := bytes.IndexByte(rest, ','); k >= 0 {
			attr, rest = rest[:k], rest[k+1:]
		} else {
			attr, rest = rest, nil
		}
		if len(attr) >= 2 && attr[1] == '=' {
			switch attr[0] {
			case 's':
				s = attr[2:]
			case 'i':
				i = attr[2:]
			}
		}
	}
	if s == nil || i == nil {
		return nil, 0, false
	}
	salt, err := base64.StdEncoding.DecodeString(string(s))
	if err != nil || len(salt) == 0 {
		return nil, 0, false
	}
	n, err := strconv.Atoi(string(i))
	if err != nil || n <= 0 {
		return nil, 0, false
	}
	return salt, n, true
}
