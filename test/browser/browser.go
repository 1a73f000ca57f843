// Package browser drives a headless Chromium (Debian's chromium package,
// installed by scripts/install-deps) over the DevTools protocol with
// chromedp, for the status page's end-to-end test (test/e2e/statuspage_test.go).
//
// It needs no npm step: chromedp is a Go module, and Chromium is started with
// the flags that work in this environment (headless, no sandbox as root, no
// GPU, no QUIC, no background networking) and a fresh --user-data-dir.
// Screenshots go to test/browser/out/ (git-ignored).
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/chromedp/chromedp"
)

// Candidates are the Chromium binaries tried in order after $POOLMGR_CHROMIUM.
var Candidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the Chromium executable: $POOLMGR_CHROMIUM, else the first of
// Candidates found.
func Find() (string, error) {
	if p := os.Getenv("POOLMGR_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("POOLMGR_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, c := range Candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found (tried $POOLMGR_CHROMIUM and " + fmt.Sprint(Candidates) +
		"); install Debian's chromium package: scripts/install-deps")
}

// Flags are the Chromium command-line flags used (besides --user-data-dir).
var Flags = []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync", "disable-dev-shm-usage",
	"no-default-browser-check", "disable-extensions", "mute-audio", "hide-scrollbars"}

// Start launches Chromium (exe) with a fresh profile in userDataDir and
// returns a chromedp context for one tab. cancel closes the browser.
func Start(parent context.Context, exe, userDataDir string, width, height int) (context.Context, context.CancelFunc, error) {
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(exe), chromedp.UserDataDir(userDataDir),
		chromedp.WindowSize(width, height)}
	for _, f := range Flags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, acancel := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Start the browser now so that launch errors surface here.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		return nil, nil, fmt.Errorf("start %s: %w", exe, err)
	}
	return ctx, func() { cancel(); acancel() }, nil
}

// OutDir returns test/browser/out (created), where screenshots go.
func OutDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate test/browser")
	}
	dir := filepath.Join(filepath.Dir(file), "out")
	return dir, os.MkdirAll(dir, 0o755)
}

// Screenshot saves a full-page PNG of the current page to path.
func Screenshot(ctx context.Context, path string) error {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(path, buf, 0o644)
}
