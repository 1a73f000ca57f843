package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// runPoolmgr runs the binary with args and returns its combined output and
// exit status.
func runPoolmgr(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, testutil.BinaryPath(t), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return out.String(), ee.ExitCode()
	default:
		t.Fatalf("poolmgr %v: %v\n%s", args, err, out.String())
		return "", -1
	}
}

// check-config reports bad keys as `file:line: key: what is wrong` and exits
// non-zero; the repo's poolmgr.toml passes.
func TestCheckConfig(t *testing.T) {
	testutil.RequireProcess(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"app" "app"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const head = "[pool]\nbind = \"127.0.0.1:6432\"\nbackends = [\"127.0.0.1:20000\"]\n" // lines 1-3
	const tail = "\n[auth]\nauth_type = \"scram-sha-256\"\nauth_file = \"userlist.txt\"\n"
	cases := []struct {
		name, body, key string
		line            int
	}{
		{"unknown key", head + "pool_sise = 3\n" + tail, "pool_sise", 4},
		{"bad pool_mode", head + "pool_mode = \"bogus\"\n" + tail, "pool_mode", 4},
		{"bad io_engine", head + "workers = 1\nio_engine = \"kqueue\"\n" + tail, "io_engine", 5},
		{"bad auth_type", head + "\n[auth]\nauth_type = \"plain\"\nauth_file = \"userlist.txt\"\n", "auth_type", 6},
		{"unknown section key", head + tail + "\n[log]\nlevle = \"info\"\n", "levle", 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := runPoolmgr(t, "check-config", "-c", path)
			t.Logf("exit %d: %s", code, strings.TrimSpace(out))
			if code == 0 {
				t.Errorf("check-config accepted %s (line %d):\n%s", tc.name, tc.line, tc.body)
			}
			// file:line: key: — the file as given or its base name, the key
			// bare or qualified by its section.
			re := regexp.MustCompile(`(` + regexp.QuoteMeta(path) + `|` + regexp.QuoteMeta(filepath.Base(path)) + `):` +
				itoa(tc.line) + `: ([a-z]+\.)?` + regexp.QuoteMeta(tc.key) + `: \S`)
			if !re.MatchString(out) {
				t.Errorf("output lacks %q:\n%s", re, out)
			}
		})
	}

	ok := filepath.Join(dir, "ok.toml")
	if err := os.WriteFile(ok, []byte(head+tail), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runPoolmgr(t, "check-config", "-c", ok); code != 0 {
		t.Errorf("minimal valid config: exit %d:\n%s", code, out)
	}

	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	repoCfg := filepath.Join(root, "poolmgr.toml")
	if _, err := os.Stat(repoCfg); err != nil {
		t.Fatalf("the repo's poolmgr.toml: %v", err)
	}
	if out, code := runPoolmgr(t, "check-config", "-c", repoCfg); code != 0 {
		t.Errorf("check-config -c %s: exit %d:\n%s", repoCfg, code, out)
	}
}

// `poolmgr version` prints something and exits 0.
func TestVersion(t *testing.T) {
	testutil.RequireProcess(t)
	out, code := runPoolmgr(t, "version")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("poolmgr version: exit %d, output %q", code, out)
	}
}
