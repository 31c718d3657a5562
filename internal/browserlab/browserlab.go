// Package browserlab runs a real headless Chromium inside a lab host's network namespace and
// drives it with chromedp, for end-to-end tests of the pages weft's agents serve on their
// namespaces' loopback. chromedp speaks to the browser over its DevTools pipe (file
// descriptors 3 and 4), which nsenter passes on, so no DevTools port is opened anywhere.
// Test-only: nothing but tests imports it.
package browserlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftnet/weft/internal/netlab"
)

// Chromium is the browser binary looked up in PATH (Debian's chromium package).
const Chromium = "chromium"

// Start launches Chromium in network namespace ns (a name under /run/netns) with any extra
// allocator options (flags, e.g. chromedp.Flag("host-resolver-rules", …)) and returns a
// chromedp context for one tab; the browser ends with the test.
func Start(t testing.TB, ns string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin, err := exec.LookPath(Chromium)
	if err != nil {
		netlab.SkipOrFail(t, "no %s in PATH (apt install chromium)", Chromium)
	}
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "chromium-in-"+ns)
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=/run/netns/%s -- %s \"$@\"\n", ns, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(wrapper),
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first action starts the browser, whose life is that of the context it gets (so not
	// a shorter one); fail here rather than in the test's first step.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium in %s: %v", ns, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("chromium in %s did not start within 60s", ns)
	}
	return ctx
}
