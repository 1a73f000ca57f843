package storm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// fakeServer is a tiny PostgreSQL-protocol server for tests: startup,
// authentication (trust, password, md5, SCRAM with a stable or a fresh
// salt), then simple queries:
//
//	"SELECT fail"  -> ErrorResponse 42601 + ReadyForQuery
//	"SELECT fatal" -> ErrorResponse FATAL 57P01, connection closed
//	"SELECT big"   -> a 100 KB DataRow
//	anything else  -> one row "1"
type fakeServer struct {
	method   string // trust | password | md5 | scram | scram-fresh
	user     string
	password string
	scram    *auth.ScramSecret // stable verifier for "scram"

	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	logins atomic.Int64
	peak   atomic.Int64
	open   atomic.Int64
	errs   atomic.Int64
}

func newFakeServer(t testing.TB, method string) *fakeServer {
	t.Helper()
	s := &fakeServer{method: method, user: "app", password: "secret", conns: map[net.Conn]bool{}}
	var err error
	if s.scram, err = auth.NewScramSecret(s.password, []byte("0123456789abcdef"), 4096); err != nil {
		t.Fatal(err)
	}
	s.ln, err = net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			if n := s.open.Add(1); n > s.peak.Load() {
				s.peak.Store(n)
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.serve(c); err != nil && !errors.Is(err, io.EOF) {
					s.errs.Add(1)
				}
				c.Close()
				s.open.Add(-1)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func readMsg(r *bufio.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[1:])) - 4
	if n < 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("bad length %d", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return h[0], b, err
}

func (s *fakeServer) serve(c net.Conn) error {
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(lb[:])-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(body) != pgproto.ProtocolVersion3 {
		return fmt.Errorf("not a v3 startup")
	}
	params := map[string]string{}
	if err := pgproto.StartupParams(body[4:], func(k, v []byte) { params[string(k)] = string(v) }); err != nil {
		return err
	}
	user := params["user"]
	fail := func(code, msg string) error {
		w.Write(pgproto.AppendError(nil, pgproto.SevFatal, code, msg))
		w.Flush()
		return nil
	}
	expectP := func() ([]byte, error) {
		w.Flush()
		t, b, err := readMsg(r)
		if err != nil {
			return nil, err
		}
		if t != 'p' {
			return nil, fmt.Errorf("expected p, got %q", t)
		}
		return b, nil
	}
	ok := user == s.user
	switch s.method {
	case "trust":
	case "password":
		w.Write(pgproto.AppendAuth(nil, uint32(auth.AuthCleartextPassword), nil))
		b, err := expectP()
		if err != nil {
			return err
		}
		ok = ok && strings.TrimRight(string(b), "\x00") == s.password
	case "md5":
		salt := auth.NewMD5Challenge(nil)
		w.Write(pgproto.AppendAuth(nil, uint32(auth.AuthMD5Password), salt[:]))
		b, err := expectP()
		if err != nil {
			return err
		}
		sec := auth.Secret{Kind: auth.SecretMD5, MD5: auth.MD5Hash(s.user, s.password)}
		ok = ok && auth.VerifyMD5(sec, user, salt, strings.TrimRight(string(b), "\x00")) == nil
	case "scram", "scram-fresh":
		sec := auth.Secret{Kind: auth.SecretScram, Scram: s.scram}
		if s.method == "scram-fresh" {
			sec = auth.Secret{Kind: auth.SecretPlain, Plain: s.password}
		}
		ss, err := auth.NewScramServer(user, sec, nil)
		if err != nil {
			return err
		}
		w.Write(pgproto.AppendAuth(nil, uint32(auth.AuthSASL), ss.Mechanisms()))
		b, err := expectP()
		if err != nil {
			return err
		}
		first, err := ss.HandleInitial(b)
		if err != nil {
			return fail("08P01", err.Error())
		}
		w.Write(pgproto.AppendAuth(nil, uint32(auth.AuthSASLContinue), first))
		if b, err = expectP(); err != nil {
			return err
		}
		final, err := ss.HandleFinal(b)
		if err != nil {
			return fail("28P01", "password authentication failed for user \""+user+"\"")
		}
		w.Write(pgproto.AppendAuth(nil, uint32(auth.AuthSASLFinal), final))
	default:
		return fmt.Errorf("method %q", s.method)
	}
	if !ok {
		return fail("28P01", "password authentication failed for user \""+user+"\"")
	}
	w.Write(pgproto.AppendAuth(nil, uint32(auth.AuthOK), nil))
	w.Write(pgproto.AppendParameterStatus(nil, "server_version", "15.0 (fake)"))
	w.Write(pgproto.AppendParameterStatus(nil, "client_encoding", "UTF8"))
	w.Write(pgproto.AppendBackendKeyData(nil, 42, 4242))
	w.Write(pgproto.AppendReadyForQuery(nil, 'I'))
	w.Flush()
	s.logins.Add(1)
	c.SetDeadline(time.Time{})
	for {
		t, b, err := readMsg(r)
		if err != nil {
			return err
		}
		switch t {
		case 'X':
			return nil
		case 'Q':
			q, _ := pgproto.QueryText(b)
			switch string(q) {
			case "SELECT fail":
				w.Write(pgproto.AppendError(nil, pgproto.SevError, "42601", "syntax error"))
			case "SELECT fatal":
				return fail("57P01", "terminating connection due to administrator command")
			case "SELECT big":
				w.Write(rowDesc())
				w.Write(dataRow(strings.Repeat("x", 100000)))
				w.Write(pgproto.AppendCommandComplete(nil, "SELECT 1"))
			default:
				w.Write(rowDesc())
				w.Write(dataRow("1"))
				w.Write(pgproto.AppendCommandComplete(nil, "SELECT 1"))
			}
			w.Write(pgproto.AppendReadyForQuery(nil, 'I'))
			w.Flush()
		default:
			return fmt.Errorf("unexpected message %q", t)
		}
	}
}

func rowDesc() []byte {
	b, off := pgproto.Begin(nil, 'T')
	b = binary.BigEndian.AppendUint16(b, 1)
	b = pgproto.AppendCString(b, "?column?")
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 23)
	b = binary.BigEndian.AppendUint16(b, 4)
	b = binary.BigEndian.AppendUint32(b, ^uint32(0))
	b = binary.BigEndian.AppendUint16(b, 0)
	return pgproto.Finish(b, off)
}

func dataRow(v string) []byte {
	b, off := pgproto.Begin(nil, 'D')
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	b = append(b, v...)
	return pgproto.Finish(b, off)
}
