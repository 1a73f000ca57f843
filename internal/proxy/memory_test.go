package proxy_test

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// maxClientSize bounds proxy.Client: every idle client holds one (issue 5:
// at most 1 KiB of RSS per idle client, GC headroom included). Rarely used
// state lives in side objects (clientLogin, clientPrep, clientCache,
// clientRun) that exist only while needed.
const maxClientSize = 256

func TestClientSize(t *testing.T) {
	if n := unsafe.Sizeof(proxy.Client{}); n > maxClientSize {
		t.Fatalf("proxy.Client is %d bytes, want <= %d (move rarely used fields to a side object)", n, maxClientSize)
	}
}

// leanNet is a transport for memory measurements: it keeps nothing per
// handle, only the bytes sent to the one handle being watched.
type leanNet struct {
	watch proxy.Handle
	buf   []byte
	dials []dialRec
	next  proxy.Handle
}

func (n *leanNet) Send(h proxy.Handle, b []byte) {
	if h == n.watch {
		n.buf = append(n.buf, b...)
	}
}
func (n *leanNet) Close(proxy.Handle)           {}
func (n *leanNet) PauseRead(proxy.Handle, bool) {}
func (n *leanNet) Post(fn func())               { fn() }
func (n *leanNet) take() []byte                 { b := n.buf; n.buf = n.buf[:0]; return b }
func (n *leanNet) Dial(addr string, ep proxy.Endpoint) proxy.Handle {
	n.next++
	h := 1<<40 + n.next
	n.dials = append(n.dials, dialRec{H: h, Addr: addr, EP: ep})
	return h
}

// authReq returns the code and data of the Authentication message at the
// start of b.
func authReq(tb testing.TB, b []byte) (int32, []byte) {
	if len(b) < 9 || b[0] != 'R' {
		tb.Fatalf("want an Authentication request, got %q", trunc(b))
	}
	n := int(binary.BigEndian.Uint32(b[1:]))
	return int32(binary.BigEndian.Uint32(b[5:])), b[9 : 1+n]
}

// BenchmarkIdleClientMemory logs in N clients (default 100000; env
// POOLMGR_MEM_CLIENTS) through the core with a transport that keeps nothing,
// and reports the live heap per idle authenticated client ("B/client",
// after a GC, kernel and engine memory excluded) and the heap objects each
// one keeps ("objs/client"). Run it once:
//
//	go test -run XXX -bench IdleClientMemory -benchtime 1x ./internal/proxy/
func BenchmarkIdleClientMemory(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("POOLMGR_MEM_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	const pw = "s3cret"
	salt := []byte("0123456789abcdef")
	sc, err := auth.NewScramSecret(pw, salt, 4096)
	if err != nil {
		b.Fatal(err)
	}
	// The ClientKey lets each simulated client answer SCRAM without PBKDF2.
	sp, _ := pbkdf2.Key(sha256.New, pw, salt, 4096, 32)
	mac := hmac.New(sha256.New, sp)
	mac.Write([]byte("Client Key"))
	var ck [32]byte
	copy(ck[:], mac.Sum(nil))
	sk := sc.ServerKey

	for _, tc := range []struct {
		name   string
		method proxy.AuthType
		query  bool // run one query after login (the client goes active, then idle again)
	}{
		{"md5", proxy.AuthMD5, false},
		{"scram", proxy.AuthScram, false},
		{"scram+query", proxy.AuthScram, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				o := &proxy.Options{
					PoolMode:             proxy.ModeTransaction,
					PoolSize:             4,
					MaxClients:           n + 10,
					MaxServersPerBackend: 100,
					MaxMessageSize:       64 << 20,
					AuthType:             tc.method,
					ServerLoginRetry:     15e9,
					Log:                  slog.New(slog.DiscardHandler),
				}
				sec := auth.Secret{Kind: auth.SecretScram, Scram: sc}
				if tc.method == proxy.AuthMD5 {
					sec = auth.ParseSecret(auth.MD5Hash("alice", pw))
				}
				o.Secrets = map[string]auth.Secret{"alice": sec}
				sh := proxy.NewShared(o, []string{backendAddr})
				l := proxy.NewLoop(sh, 0)
				net := &leanNet{buf: make([]byte, 0, 4096), dials: make([]dialRec, 0, 8)}
				l.Bind(net, net)
				eps := make([]proxy.Endpoint, 0, n)
				startup := enc(b, startupMsg("alice", "app", "application_name", "bench"))
				query := enc(b, &pgproto3.Query{String: "select 1"})
				resp := enc(b, selectOne('I')...)
				srvLogin := enc(b, loginMsgs(backendPID, backendSecret)...)
				var srvEP proxy.Endpoint

				login := func(i int) {
					h := proxy.Handle(i + 1)
					ip := netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)})
					ep := l.Accept(h, netip.AddrPortFrom(ip, uint16(10000+i%50000)))
					net.watch = h
					ep.OnData(startup)
					code, data := authReq(b, net.take())
					creds := auth.BackendCreds{User: "alice", ClientKey: &ck, ServerKey: &sk}
					if tc.method == proxy.AuthMD5 {
						creds = auth.BackendCreds{User: "alice", Plain: pw}
					}
					ba := auth.NewBackendAuth(creds, nil)
					for {
						msg, err := ba.Step(code, data)
						if err != nil {
							b.Fatalf("client %d: %v", i, err)
						}
						ep.OnData(msg)
						if srvEP == nil && len(net.dials) > 0 { // the pool's first server login
							srvEP = net.dials[0].EP
							srvEP.OnConnected(nil)
							srvEP.OnData(srvLogin)
						}
						out := net.take()
						code, data = authReq(b, out)
						if code == auth.AuthSASLFinal {
							if _, err := ba.Step(code, data); err != nil {
								b.Fatalf("client %d: %v", i, err)
							}
							code, data = authReq(b, out[1+int(binary.BigEndian.Uint32(out[1:])):])
						}
						if code == auth.AuthOK {
							break
						}
					}
					if tc.query {
						ep.OnData(query)
						if i == 0 { // the server first takes the client's application_name
							srvEP.OnData(enc(b, cc("SET"), rfq('I')))
						}
						srvEP.OnData(resp)
					}
					if st := ep.(*proxy.Client).State(); st != proxy.ClientIdle {
						b.Fatalf("client %d: state %v after login", i, st)
					}
					net.take()
					eps = append(eps, ep)
				}
				login(0) // the pool, its server and the interned strings exist from here on
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := 1; i <= n; i++ {
					login(i)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/client")
				b.ReportMetric(float64((after.Mallocs-after.Frees)-(before.Mallocs-before.Frees))/float64(n), "objs/client")
				b.ReportMetric(float64(unsafe.Sizeof(proxy.Client{})), "B/Client")
				runtime.KeepAlive(eps)
				runtime.KeepAlive(l)
			}
		})
	}
}
