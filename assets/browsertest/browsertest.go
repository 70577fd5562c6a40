// Package browsertest starts headless Chromium for the page's tests (the
// assets' unit tests and the end-to-end tests in cmd/livedash) and watches
// its console. Only tests import it.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// DefaultPath is Debian's chromium; CHROMIUM_PATH overrides it.
const DefaultPath = "/usr/bin/chromium"

// New starts a fresh headless Chromium (its own profile in tb.TempDir) with a
// window of width×height, and extra options after the defaults, and returns
// the context of its first tab; the browser is stopped at cleanup. A missing browser is a failure, not a skip:
// the browser tests are the only proof the page works.
func New(tb testing.TB, width, height int, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	exe := DefaultPath
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		exe = p
	}
	if _, err := os.Stat(exe); err != nil {
		tb.Fatalf("headless Chromium not found at %s: install it with `apt-get update && apt-get install -y chromium` (make test does this)", exe)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(tb.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(width, height),
	}, extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// WatchConsole collects the tab's console errors and uncaught exceptions
// (CSP violations arrive as browser log errors) from now on, but for those
// an ignore func accepts; the returned func reports each on tb as an error.
func WatchConsole(tb testing.TB, ctx context.Context, ignore ...func(chromedp.ConsoleMessage) bool) (check func()) {
	tb.Helper()
	var mu sync.Mutex
	var bad []string
	cctx, cancel := context.WithCancel(ctx)
	msgs := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				if slices.ContainsFunc(ignore, func(f func(chromedp.ConsoleMessage) bool) bool { return f(m) }) {
					continue
				}
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return func() {
		tb.Helper()
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bad {
			tb.Errorf("browser console: %s", b)
		}
	}
}
