package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftnet/weft/internal/browserlab"
	"github.com/weftnet/weft/internal/netlab"
)

// The web console in a real headless Chromium (inside host a's namespace, where the console
// listens on loopback as by default) against three real agents. Every check waits, bounded,
// on the page's data attributes while the page stays open: nothing reloads it.

// consoleArtifacts is where the test's screenshots go: $WEFT_ARTIFACTS (CI keeps it), else a
// directory of its own that outlives the test (its path is logged).
func consoleArtifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WEFT_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "weft-console-artifacts-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// page drives one tab.
type page struct {
	t   *testing.T
	ctx context.Context
}

// js evaluates expr in the page.
func js[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// wait polls expr until it is truthy and returns how long it took.
func (p *page) wait(what, expr string, timeout time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	for {
		left := timeout - time.Since(start)
		ctx, cancel := context.WithTimeout(p.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")",
			chromedp.WithPollingTimeout(left), chromedp.WithPollingInterval(100*time.Millisecond)))
		cancel()
		if err == nil {
			return time.Since(start)
		}
		// A navigation (a redirect after /login) replaces the page's JavaScript context under
		// a poll running in the old one: poll again in the new one.
		if strings.Contains(err.Error(), "Cannot find context with specified id") && time.Since(start) < timeout {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText.slice(0, 2000) : ''"))
		p.t.Fatalf("%s: not within %s (%v); the page shows:\n%s", what, timeout, err, body)
		return 0
	}
}

// open navigates to url (a cold load, once) and waits for the page's first data.
func (p *page) open(url string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("open %s: %v", url, err)
	}
	p.wait("the page's first data", `document.body.dataset.ready === "1"`, 20*time.Second)
}

// follow clicks the page's own link to path (client-side routing, no reload) and checks that
// the document was not reloaded.
func (p *page) follow(path string) {
	p.t.Helper()
	js[bool](p, `window.__weftNoReload = true`)
	if !js[bool](p, fmt.Sprintf(`(() => { const a = document.querySelector('a[href=%q]'); if (!a) return false; a.click(); return true })()`, path)) {
		p.t.Fatalf("the page has no link to %s", path)
	}
	p.wait("location "+path, fmt.Sprintf(`location.pathname === %q`, path), 5*time.Second)
	if !js[bool](p, `window.__weftNoReload === true`) {
		p.t.Fatalf("following the link to %s reloaded the page", path)
	}
}

func (p *page) screenshot(dir, name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s (%d bytes)", path, len(png))
}

// attrInt reads an integer data attribute of the first element matching sel (-1: none).
func attrInt(p *page, sel, attr string) int64 {
	return int64(js[float64](p, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? Number(e.getAttribute(%q)) : -1 })()`, sel, attr)))
}

// TestNetns_Console: the map shows the three hosts and a's links up; an iperf3 between a and b
// lifts that link's throughput in the page; a service registered on b appears on the services
// page; a flow a's policy refuses shows in its drop count, and the page's flow form answers
// deny for it and allow for an allowed one; a killed agent turns failed within the detection
// time. A foreign Host, a cross-origin Origin and (on a non-loopback console) a missing token
// are refused. Screenshots of the map and the services page are written as artifacts.
func TestNetns_Console(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping", "iperf3", "curl")
	art := consoleArtifacts(t)
	nodes := gossipLab(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	// a refuses inbound flows but ping and iperf3; c's probe of port 9999 is the drop.
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(`default: deny
rules:
  - name: ping
    from: {any: true}
    to: {any: true, proto: icmp}
  - name: iperf
    from: {any: true}
    to: {any: true, ports: ["5201/tcp"]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "ui.token")
	const token = "console-test-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start(gossipConfig(a, key) + "policy_file: " + pol + "\nmetrics_listen: 127.0.0.1:9101\n")
	// b's console listens on its underlay address: it needs the token.
	b.start(gossipConfig(b, key, a.underlay) + fmt.Sprintf("ui:\n  listen: %s:9190\n  token_file: %s\n", b.underlay, tokenFile))
	c.start(gossipConfig(c, key, a.underlay))
	eventually(t, 30*time.Second, "hosts reach each other", func() error { return allPairsPing(nodes) })

	// rebind.test resolves to the console's address, as a DNS rebinding attack makes it.
	p := &page{t: t, ctx: browserlab.Start(t, a.host.NS, chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"))}
	p.open("http://127.0.0.1:9190/map")

	t.Run("map: three nodes, links up", func(t *testing.T) {
		p.t = t
		// The map and the table both carry the attributes: count hosts, not elements.
		p.wait("three alive nodes", `new Set([...document.querySelectorAll('[data-node][data-status="alive"]')].map(e => e.dataset.node)).size === 3`, 20*time.Second)
		for _, n := range []string{"b", "c"} {
			p.wait("a's link to "+n+" up", fmt.Sprintf(`document.querySelector('[data-link=%q][data-state="up"]')`, n), 20*time.Second)
		}
		weight := js[float64](p, `performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((s, e) => s + (e.transferSize || 0), 0)`)
		t.Logf("cold /map load: %.0f bytes transferred (document, assets and the first API answers; the event stream not counted)", weight)
		p.screenshot(art, "console-map.png")
	})

	t.Run("map: iperf3 lifts a-b's throughput", func(t *testing.T) {
		p.t = t
		before := max(attrInt(p, `[data-link="b"]`, "data-tx-bps"), 0)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv := b.host.Command(ctx, "iperf3", "-s", "-1")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv.Wait() }()
		bAddr := b.status().Address
		var cli *exec.Cmd
		eventually(t, 5*time.Second, "iperf3 client starts", func() error {
			cli = a.host.Command(ctx, "iperf3", "-c", bAddr, "-t", "8")
			return cli.Start()
		})
		defer func() { _ = cli.Wait() }()
		took := p.wait("a-b tx above 10 Mbit/s", `Number(document.querySelector('[data-link="b"]')?.getAttribute('data-tx-bps') || 0) > 10e6`, 10*time.Second)
		t.Logf("a→b throughput shown %s after iperf3 started (before %d bit/s, now %d bit/s)", took.Round(100*time.Millisecond), before, attrInt(p, `[data-link="b"]`, "data-tx-bps"))
		p.screenshot(art, "console-map-iperf.png")
	})

	t.Run("host: a's peers with endpoint, MTU and a sparkline", func(t *testing.T) {
		p.t = t
		p.follow("/host/a")
		p.wait("b's row on a's host page", `[...document.querySelectorAll('main tr')].some(r => r.innerText.includes('b') && r.innerText.includes('`+b.underlay+`:'))`, 10*time.Second)
		p.wait("a drawn sparkline for b (the iperf3 minutes)", `[...document.querySelectorAll('main svg.spark polyline')].length > 0`, 10*time.Second)
	})

	t.Run("zoom 200%: the map still fits the width", func(t *testing.T) {
		p.t = t
		p.follow("/map")
		// 1280 device pixels at a zoom of 2: a 640-pixel-wide layout with text twice as large.
		ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(640, 900, chromedp.EmulateScale(2))); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = chromedp.Do(p.ctx, chromedp.EmulateReset()) }()
		p.wait("no horizontal scrolling at 640 CSS pixels", `document.documentElement.scrollWidth <= window.innerWidth + 1`, 5*time.Second)
		if fs := js[float64](p, `parseFloat(getComputedStyle(document.querySelector('td') || document.body).fontSize)`); fs < 12 {
			t.Fatalf("table text %.1f CSS px: too small to read", fs)
		}
		p.screenshot(art, "console-map-zoom200.png")
	})

	t.Run("services: a registration appears live", func(t *testing.T) {
		p.t = t
		p.follow("/services")
		if out, err := b.cli("register", "shop", "--port", "8080"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		took := p.wait("service shop on the page", `document.querySelector('[data-service="shop"]')`, 20*time.Second)
		t.Logf("shop appeared %s after its registration", took.Round(100*time.Millisecond))
		p.screenshot(art, "console-services.png")
	})

	t.Run("policy: a drop shows, the form answers", func(t *testing.T) {
		p.t = t
		p.follow("/policy")
		p.wait("policy counters", `document.querySelector('[data-policy-drops]')`, 10*time.Second)
		before := attrInt(p, "[data-policy-drops]", "data-policy-drops")
		aAddr := a.status().Address
		for range 3 {
			if c.reach("tcp", aAddr, 9999) {
				t.Fatal("c reached a:9999 through a deny-by-default policy")
			}
		}
		p.wait("drops rise", fmt.Sprintf(`Number(document.querySelector('[data-policy-drops]').getAttribute('data-policy-drops')) > %d`, before), 15*time.Second)
		ask := func(from, to, port, proto string) string {
			js[bool](p, fmt.Sprintf(`(() => {
				const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); };
				document.getElementById('flow-verdict').removeAttribute('data-verdict');
				set('flow-from', %q); set('flow-to', %q); set('flow-port', %q); set('flow-proto', %q);
				document.getElementById('flow-submit').click(); return true })()`, from, to, port, proto))
			p.wait("a verdict", `document.getElementById('flow-verdict').getAttribute('data-verdict')`, 10*time.Second)
			return js[string](p, `document.getElementById('flow-verdict').getAttribute('data-verdict')`)
		}
		if v := ask("c", "a", "9999", "tcp"); v != "deny" {
			t.Fatalf("c → a:9999/tcp: verdict %q, want deny", v)
		}
		if v := ask("b", "a", "5201", "tcp"); v != "allow" {
			t.Fatalf("b → a:5201/tcp: verdict %q, want allow", v)
		}
	})

	t.Run("security: foreign Host, cross origin, token", func(t *testing.T) {
		p.t = t
		curl := func(h *netlab.Host, args ...string) string {
			out, _ := h.Run("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"}, args...)...)
			return strings.TrimSpace(out)
		}
		if code := curl(a.host, "http://127.0.0.1:9190/api/cluster"); code != "200" {
			t.Fatalf("plain request: %s, want 200 (else the refusals below prove nothing)", code)
		}
		if code := curl(a.host, "-H", "Host: evil.example", "http://127.0.0.1:9190/api/cluster"); code != "403" {
			t.Errorf("foreign Host (DNS rebinding): %s, want 403", code)
		}
		if code := curl(a.host, "-H", "Origin: http://evil.example", "http://127.0.0.1:9190/api/cluster"); code != "403" {
			t.Errorf("cross-origin Origin: %s, want 403", code)
		}
		if code := curl(a.host, "-X", "POST", "http://127.0.0.1:9190/api/cluster"); code != "405" {
			t.Errorf("POST: %s, want 405", code)
		}
		remote := fmt.Sprintf("http://%s:9190/api/cluster", b.underlay)
		if code := curl(a.host, remote); code != "401" {
			t.Errorf("b's non-loopback console without the token: %s, want 401", code)
		}
		if code := curl(a.host, "-H", "Authorization: Bearer wrong-token-0123456789", remote); code != "401" {
			t.Errorf("with a wrong token: %s, want 401", code)
		}
		if code := curl(a.host, "-H", "Authorization: Bearer "+token, remote); code != "200" {
			t.Errorf("with the token: %s, want 200", code)
		}
	})

	t.Run("map: a killed agent turns failed", func(t *testing.T) {
		p.t = t
		p.follow("/map")
		p.wait("c alive", `document.querySelector('[data-node="c"][data-status="alive"]')`, 10*time.Second)
		c.kill()
		took := p.wait("c failed", `document.querySelector('[data-node="c"][data-status="failed"]')`, 30*time.Second)
		t.Logf("c shown failed %s after kill -9 (fast gossip timers)", took.Round(100*time.Millisecond))
	})

	t.Run("security in Chromium: a rebound name, another origin, the token's login", func(t *testing.T) {
		p.t = t
		// refused reads a's weft_http_refused_total{listener="ui",reason=…} counters.
		refused := func() map[string]int {
			out, _ := a.host.Run("curl", "-s", "--max-time", "5", "http://127.0.0.1:9101/metrics")
			m := map[string]int{}
			for _, l := range strings.Split(out, "\n") {
				rest, ok := strings.CutPrefix(l, `weft_http_refused_total{listener="ui",reason="`)
				if !ok {
					continue
				}
				reason, val, _ := strings.Cut(rest, `"} `)
				var n int
				fmt.Sscan(val, &n)
				m[reason] = n
			}
			return m
		}
		before := refused()
		// The page under a name that resolves to 127.0.0.1: its Host is refused.
		ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
		defer cancel()
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse("http://rebind.test:9190/map"))
		if err != nil || resp.Status != 403 {
			t.Errorf("Chromium at http://rebind.test:9190/map (DNS rebinding): %v, status %v, want 403", err, resp)
		}
		// A page of another origin (another port of a's loopback) fetches the API: the
		// console refuses it and the page cannot read it.
		var ln net.Listener
		inNetns(t, a, func() { ln, err = net.Listen("tcp", "127.0.0.1:0") })
		if err != nil {
			t.Fatal(err)
		}
		evil := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `<!doctype html><body><script>
fetch("http://127.0.0.1:9190/api/cluster").then(r => r.text()).then(t => document.body.dataset.result = 'read ' + t.length,
  e => document.body.dataset.result = 'blocked: ' + e);
</script>`)
		})}
		go func() { _ = evil.Serve(ln) }()
		defer evil.Close()
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+ln.Addr().String()+"/")); err != nil {
			t.Fatal(err)
		}
		p.wait("the other origin's fetch settles", `document.body.dataset.result`, 10*time.Second)
		if res := js[string](p, `document.body.dataset.result`); !strings.HasPrefix(res, "blocked") {
			t.Errorf("a page of another origin read the console's API: %s", res)
		}
		after := refused()
		if after["host"] <= before["host"] || after["origin"] <= before["origin"] {
			t.Errorf("a's console did not count Chromium's refused requests (host, origin): before %v, after %v", before, after)
		}
		t.Logf("a's refusals by reason: %v", after)
		// b's console off loopback: refused without the token; /login sets the cookie.
		bURL := "http://" + b.underlay + ":9190"
		resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(bURL+"/map"))
		if err != nil || resp.Status != 401 {
			t.Errorf("Chromium at %s/map without the token: %v, status %v, want 401", bURL, err, resp)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(bURL+"/login?token="+url.QueryEscape(token))); err != nil {
			t.Fatal(err)
		}
		p.wait("b's console after /login shows the three hosts", `new Set([...document.querySelectorAll('[data-node]')].map(e => e.dataset.node)).size === 3`, 10*time.Second)
		if loc := js[string](p, `location.href`); loc != bURL+"/map" {
			t.Errorf("after /login: at %s, want %s/map", loc, bURL)
		}
	})
}
