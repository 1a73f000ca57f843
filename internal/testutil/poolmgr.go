package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the module root: the first directory holding go.mod
// walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var build struct {
	once sync.Once
	dir  string // temp dir holding the binary (removed by Main)
	bin  string
	err  error
}

// BinaryPath builds ./cmd/poolmgr once per test binary (into a temp dir) and
// returns its path; $POOLMGR_BIN, if set, is used instead. A build failure
// fails the test.
func BinaryPath(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if p := os.Getenv("POOLMGR_BIN"); p != "" {
			build.bin, build.err = filepath.Abs(p)
			return
		}
		root, err := RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		build.dir, err = os.MkdirTemp("", "poolmgr-e2e-bin-")
		if err != nil {
			build.err = err
			return
		}
		bin := filepath.Join(build.dir, "poolmgr")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/poolmgr")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build -o %s ./cmd/poolmgr (in %s): %v\n%s", bin, root, err, out)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		t.Fatalf("building poolmgr: %v", build.err)
	}
	return build.bin
}

// Main runs the tests and removes the binary BinaryPath built. Use it from
// TestMain: os.Exit(testutil.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	counter.Lock()
	if counter.conn != nil {
		counter.conn.Close(context.Background())
	}
	counter.Unlock()
	return code
}

// syncBuffer is a goroutine-safe bytes.Buffer keeping at most max bytes (the
// head is dropped).
type syncBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	if s.max > 0 && s.b.Len() > s.max {
		s.b.Next(s.b.Len() - s.max/2)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proxy is a running poolmgr process started by StartPoolmgr.
type Proxy struct {
	Addr       string // "127.0.0.1:port"
	Port       int
	Cmd        *exec.Cmd
	Dir        string // temp dir holding the config and userlist
	ConfigPath string
	// Direct is set when POOLMGR_E2E_DIRECT=1: no process was started and
	// Addr is the primary itself (to check the tests' client-side logic
	// against PostgreSQL). Cmd is nil then.
	Direct bool

	t      testing.TB
	log    *syncBuffer
	engine string
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
	stop   sync.Once
}

// Direct reports POOLMGR_E2E_DIRECT=1: StartPoolmgr starts nothing and
// returns the primary's address (calibrating tests against PostgreSQL).
func Direct() bool { return os.Getenv("POOLMGR_E2E_DIRECT") == "1" }

// RequireProcess skips the test in direct mode (it needs a real poolmgr).
func RequireProcess(t testing.TB) {
	t.Helper()
	if Direct() {
		t.Skip("needs a poolmgr process (POOLMGR_E2E_DIRECT=1)")
	}
}

// Option changes how StartPoolmgr starts the proxy.
type Option func(*startOptions)

type startOptions struct {
	users []string // userlist.txt lines
	env   []string
}

// WithUser adds a user to userlist.txt (besides app and postgres).
func WithUser(name, password string) Option {
	return func(o *startOptions) { o.users = append(o.users, fmt.Sprintf("%q %q", name, password)) }
}

// WithUserlistLine adds a raw line to userlist.txt (e.g. an md5/SCRAM secret).
func WithUserlistLine(line string) Option {
	return func(o *startOptions) { o.users = append(o.users, line) }
}

// WithEnv adds environment variables ("K=V") for the poolmgr process.
func WithEnv(kv ...string) Option {
	return func(o *startOptions) { o.env = append(o.env, kv...) }
}

// Engine is the io_engine StartPoolmgr sets: $POOLMGR_ENGINE or "fallback".
func Engine() string {
	if e := os.Getenv("POOLMGR_ENGINE"); e != "" {
		return e
	}
	return "fallback"
}

var ioEngineKey = regexp.MustCompile(`(?m)^\s*io_engine\s*=`)
var poolHeader = regexp.MustCompile(`(?m)^\s*\[pool\]\s*$`)

// render substitutes the port and adds io_engine to [pool] unless present.
func render(cfg string, port int, engine string) string {
	cfg = strings.ReplaceAll(cfg, PortPlaceholder, strconv.Itoa(port))
	if !ioEngineKey.MatchString(cfg) {
		if loc := poolHeader.FindStringIndex(cfg); loc != nil {
			cfg = cfg[:loc[1]] + fmt.Sprintf("\nio_engine = %q", engine) + cfg[loc[1]:]
		}
	}
	return cfg
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartPoolmgr starts bin/poolmgr with cfgTOML (which must bind to
// 127.0.0.1:{{PORT}}; Config.TOML does), a userlist.txt holding app/app,
// postgres/postgres and the users of opts, and io_engine = $POOLMGR_ENGINE
// (default "fallback") unless cfgTOML sets it. It waits until the port accepts
// connections and stops the process when the test ends (SIGTERM, then SIGKILL
// after 10 s), logging its stderr if the test failed.
func StartPoolmgr(t testing.TB, cfgTOML string, opts ...Option) *Proxy {
	t.Helper()
	if Direct() {
		return &Proxy{Addr: PrimaryAddr, Port: PrimaryPort, Direct: true, t: t, log: &syncBuffer{}, done: make(chan struct{})}
	}
	if !strings.Contains(cfgTOML, PortPlaceholder) {
		t.Fatalf("StartPoolmgr: config must contain %s (bind = \"127.0.0.1:%s\")", PortPlaceholder, PortPlaceholder)
	}
	bin := BinaryPath(t)
	var o startOptions
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	users := append([]string{`"app" "app"`, `"postgres" "postgres"`}, o.users...)
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(strings.Join(users, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := startOnce(t, bin, dir, cfgTOML, o)
		if err == nil {
			return p
		}
		lastErr = err
		// Another process may have taken the port between freePort and bind.
		if !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			break
		}
	}
	t.Fatalf("StartPoolmgr: %v", lastErr)
	return nil
}

func startOnce(t testing.TB, bin, dir, cfgTOML string, o startOptions) (*Proxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		Addr:       fmt.Sprintf("127.0.0.1:%d", port),
		Port:       port,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "poolmgr.toml"),
		t:          t,
		log:        &syncBuffer{max: 16 << 20},
		engine:     Engine(),
		done:       make(chan struct{}),
	}
	if err := os.WriteFile(p.ConfigPath, []byte(render(cfgTOML, port, p.engine)), 0o600); err != nil {
		return nil, err
	}
	p.Cmd = exec.Command(bin, "-c", p.ConfigPath)
	p.Cmd.Dir = dir
	p.Cmd.Stdout = p.log
	p.Cmd.Stderr = p.log
	p.Cmd.Env = append(os.Environ(), o.env...)
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("poolmgr (pid %d, %s, io_engine=%s) config:\n%s\npoolmgr log:\n%s",
				p.Cmd.Process.Pid, p.Addr, p.engine, p.config(), p.Log())
		}
	})
	err = WaitFor(20*time.Second, 10*time.Millisecond, func() error {
		select {
		case <-p.done:
			return errExited
		default:
		}
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("poolmgr did not accept connections on %s (%v, exit: %v); config:\n%s\nlog:\n%s",
			p.Addr, err, p.exitErr(), p.config(), p.Log())
	}
	return p, nil
}

var errExited = errors.New("poolmgr exited")

func (p *Proxy) config() string {
	b, _ := os.ReadFile(p.ConfigPath)
	return string(b)
}

func (p *Proxy) exitErr() error {
	select {
	case <-p.done:
		if p.err == nil {
			return errors.New("exit status 0")
		}
		return p.err
	default:
		return errors.New("still running")
	}
}

// Log returns what poolmgr wrote to stderr (and stdout) so far.
func (p *Proxy) Log() string { return p.log.String() }

// ConnString is a key/value connection string to the proxy.
func (p *Proxy) ConnString(user, pass, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5",
		p.Port, KV(user), KV(pass), KV(db))
}

// Signal sends sig to the poolmgr process.
func (p *Proxy) Signal(sig os.Signal) {
	p.t.Helper()
	if p.Direct {
		p.t.Fatalf("Signal(%v) in direct mode", sig)
	}
	if err := p.Cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to poolmgr: %v", sig, err)
	}
}

// Exited reports whether the process has exited.
func (p *Proxy) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code,
// or an error if it is still running.
func (p *Proxy) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("poolmgr still running after %v", timeout)
	}
}

// Stop sends SIGTERM and waits for the process to exit, killing it after
// 10 s. It is idempotent and also runs at test cleanup.
func (p *Proxy) Stop() {
	p.stop.Do(func() {
		if p.Direct {
			return
		}
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.t.Logf("poolmgr did not exit 10 s after SIGTERM; killing it")
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
}

// WriteConfig replaces the config file (same port and io_engine handling as
// StartPoolmgr); follow with Signal(syscall.SIGHUP) to reload.
func (p *Proxy) WriteConfig(cfgTOML string) {
	p.t.Helper()
	if err := os.WriteFile(p.ConfigPath, []byte(render(cfgTOML, p.Port, p.engine)), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// ServerPorts returns the local ports of the proxy's connections to the
// primary (nil if /proc cannot be read).
func (p *Proxy) ServerPorts() []int {
	if p.Direct {
		return nil
	}
	ports, ok := socketPorts(p.Cmd.Process.Pid, PrimaryPort)
	if !ok {
		return nil
	}
	return ports
}

// ServerConnCount is ServerConnCount restricted to the backends this proxy
// process is connected to (other users of the cluster are not counted).
func (p *Proxy) ServerConnCount(t testing.TB, db, user string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p.CountServerConns(ctx, db, user)
	if err != nil {
		t.Fatalf("ServerConnCount(%s, %s): %v", db, user, err)
	}
	return n
}

// CountServerConns is Proxy.ServerConnCount for any goroutine.
func (p *Proxy) CountServerConns(ctx context.Context, db, user string) (int, error) {
	return CountServerConns(ctx, db, user, p.ServerPorts())
}
