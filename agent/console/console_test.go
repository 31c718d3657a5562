package console

import (
	"bufio"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// refusals records Config.Refused.
type refusals struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reason]++
}

func (r *refusals) get(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

// start serves a console over f on loopback; the server and console end with the test.
func start(t *testing.T, f *fakeAgent, cfg Config) (*Server, *httptest.Server, *refusals) {
	t.Helper()
	ref := &refusals{}
	cfg.Refused = ref.add
	s, err := New(cfg, f.source())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		_ = s.Close() // ends the streams first, so Close of the test server does not wait on them
		ts.Close()
	})
	return s, ts, ref
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// checkHeaders: the headers every answer carries, refusals included, and never CORS.
func checkHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("Content-Security-Policy"); got != CSP {
		t.Errorf("%s: CSP %q, want %q", what, got, CSP)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s: nosniff %q, referrer policy %q", what, resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Referrer-Policy"))
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s: CORS header %s", what, k)
		}
	}
}

// TestServer_refusesHostileRequests: each rule of guard.go against a request that breaks
// it, with a loopback console (no token).
func TestServer_refusesHostileRequests(t *testing.T) {
	_, ts, ref := start(t, newFakeAgent(), testConfig())
	for _, tt := range []struct {
		name, method, path string
		hdr                map[string]string
		code               int
		reason             string
	}{
		{"DNS rebinding: a foreign Host", "GET", "/api/cluster", map[string]string{"Host": "attacker.example:9190"}, 403, "host"},
		{"a foreign Host on a page", "GET", "/map", map[string]string{"Host": "weft.attacker.example"}, 403, "host"},
		{"a cross-origin read", "GET", "/api/cluster", map[string]string{"Origin": "http://attacker.example"}, 403, "origin"},
		{"an opaque origin", "GET", "/api/events", map[string]string{"Origin": "null"}, 403, "origin"},
		{"another port of this host", "GET", "/api/services", map[string]string{"Origin": "http://127.0.0.1:1"}, 403, "origin"},
		{"Sec-Fetch-Site cross-site", "GET", "/api/policy", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross_site"},
		{"POST", "POST", "/api/cluster", nil, 405, "method"},
		{"PUT", "PUT", "/map", nil, 405, "method"},
		{"DELETE", "DELETE", "/api/policy", nil, 405, "method"},
		{"POST of the flow test", "POST", "/api/policy/test?from=h1&to=h2&port=80", nil, 405, "method"},
	} {
		before := ref.get(tt.reason)
		resp, body := do(t, tt.method, ts.URL+tt.path, tt.hdr)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d %q, want %d", tt.name, resp.StatusCode, body, tt.code)
		}
		if ref.get(tt.reason) != before+1 {
			t.Errorf("%s: refusal %q not counted", tt.name, tt.reason)
		}
		if strings.Contains(body, "h2") || strings.Contains(body, "192.168.150") {
			t.Errorf("%s: the refusal leaks data: %q", tt.name, body)
		}
		checkHeaders(t, tt.name, resp)
	}
	// The same requests, as the console's own page sends them, pass.
	for _, hdr := range []map[string]string{
		nil,
		{"Origin": ts.URL, "Sec-Fetch-Site": "same-origin"},
		{"Host": "localhost" + ts.URL[strings.LastIndex(ts.URL, ":"):], "Sec-Fetch-Site": "none"},
	} {
		resp, body := do(t, "GET", ts.URL+"/api/cluster", hdr)
		if resp.StatusCode != 200 || !strings.Contains(body, `"self":"h1"`) {
			t.Errorf("own request %v: %d %q", hdr, resp.StatusCode, body)
		}
		checkHeaders(t, "own request", resp)
	}
}

// TestServer_token: with a token (a non-loopback console), nothing without it; Bearer or
// the cookie /login sets.
func TestServer_token(t *testing.T) {
	const tok = "0123456789abcdef-secret"
	cfg := testConfig()
	cfg.Token = tok
	_, ts, ref := start(t, newFakeAgent(), cfg)
	for _, tt := range []struct {
		name string
		hdr  map[string]string
	}{
		{"no token", nil},
		{"a wrong bearer token", map[string]string{"Authorization": "Bearer 0123456789abcdef-secreT"}},
		{"a token prefix", map[string]string{"Authorization": "Bearer 0123456789abcdef"}},
		{"basic auth", map[string]string{"Authorization": "Basic " + tok}},
		{"a wrong cookie", map[string]string{"Cookie": cookieName + "=nope"}},
	} {
		for _, path := range []string{"/api/cluster", "/map", "/assets/app.js", "/api/events"} {
			before := ref.get("token")
			resp, body := do(t, "GET", ts.URL+path, tt.hdr)
			if resp.StatusCode != 401 || strings.Contains(body, "h2") {
				t.Errorf("%s %s: %d %q, want 401", tt.name, path, resp.StatusCode, body)
			}
			if ref.get("token") != before+1 {
				t.Errorf("%s %s: not counted", tt.name, path)
			}
			checkHeaders(t, tt.name, resp)
		}
	}
	if resp, _ := do(t, "GET", ts.URL+"/login?token=wrong", nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("/login with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if resp, body := do(t, "GET", ts.URL+"/api/cluster", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 || !strings.Contains(body, "h2") {
		t.Errorf("bearer: %d %q", resp.StatusCode, body)
	}
	resp, _ := do(t, "GET", ts.URL+"/login?token="+tok, nil)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/map" {
		t.Fatalf("/login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	set := resp.Header.Get("Set-Cookie")
	for _, want := range []string{cookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %q", set, want)
		}
	}
	c := resp.Cookies()[0]
	if resp, body := do(t, "GET", ts.URL+"/api/cluster", map[string]string{"Cookie": c.Name + "=" + c.Value}); resp.StatusCode != 200 || !strings.Contains(body, "h2") {
		t.Errorf("cookie: %d %q", resp.StatusCode, body)
	}
	// The token does not open the door to a foreign Host or Origin.
	if resp, _ := do(t, "GET", ts.URL+"/api/cluster", map[string]string{"Authorization": "Bearer " + tok, "Origin": "http://attacker.example"}); resp.StatusCode != 403 {
		t.Errorf("token with a foreign Origin: %d", resp.StatusCode)
	}
}

// TestServer_pages: every URL of the page answers the page; the assets are embedded; the
// rest is 404, with the headers too.
func TestServer_pages(t *testing.T) {
	_, ts, _ := start(t, newFakeAgent(), testConfig())
	resp, _ := do(t, "GET", ts.URL+"/", nil)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/map" {
		t.Errorf("/: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/map", "/map?view=table", "/host/h2", "/host/a%20b", "/services", "/policy"} {
		resp, body := do(t, "GET", ts.URL+p, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `src="/assets/app.js"`) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		checkHeaders(t, p, resp)
	}
	for p, ct := range map[string]string{"/assets/app.js": "text/javascript", "/assets/app.css": "text/css"} {
		resp, body := do(t, "GET", ts.URL+p, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) || len(body) < 100 {
			t.Errorf("%s: %d %q, %d bytes", p, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, p := range []string{"/nope", "/api/nope", "/assets/nope.js", "/host/"} {
		resp, _ := do(t, "GET", ts.URL+p, nil)
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
		checkHeaders(t, p, resp)
	}
	resp, _ = do(t, "GET", ts.URL+"/api/cluster", nil)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/api/cluster: Cache-Control %q, Content-Type %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
	}
}

// TestAssets_CSPClean: the page has nothing the CSP would block (inline scripts, styles,
// handlers, other origins), and the script carries the DOM contract's names.
func TestAssets_CSPClean(t *testing.T) {
	sub, _ := fs.Sub(assetsFS, "assets")
	html, _ := fs.ReadFile(sub, "index.html")
	js, _ := fs.ReadFile(sub, "app.js")
	css, _ := fs.ReadFile(sub, "app.css")
	for _, re := range []string{`<script(?:[^>](?:[^s]|s[^r]|sr[^c]))*>`, `<style`, `\sstyle=`, `\son[a-z]+=`, `https?://`, `javascript:`} {
		if loc := regexp.MustCompile(re).FindIndex(html); loc != nil {
			t.Errorf("index.html: %q at %d: the CSP blocks it, or it leaves the origin", html[loc[0]:loc[1]], loc[0])
		}
	}
	for _, bad := range []string{"innerHTML", "eval(", "new Function", "setAttribute('style'", "@import", "url(http"} {
		if strings.Contains(string(js), bad) || strings.Contains(string(css), bad) {
			t.Errorf("assets use %q", bad)
		}
	}
	if regexp.MustCompile(`https?://(?:[^w]|w[^w]|ww[^w]|www[^.]|www\.[^w])`).Match(js) {
		t.Error("app.js names another origin")
	}
	for _, name := range []string{"'data-node'", "'data-status'", "data-refused", "'data-link'", "'data-state'", "'data-rx-bps'", "'data-tx-bps'",
		"'data-service'", "'data-health'", "'data-instances'", "'data-policy-drops'", "'data-rule'", "'data-hits'", "'data-drops'",
		"'flow-from'", "'flow-to'", "'flow-port'", "'flow-proto'", "'flow-submit'", "'flow-verdict'", "'data-verdict'",
		"dataset.ready = '1'", "history.pushState", "new EventSource('/api/events')"} {
		if !strings.Contains(string(js), name) {
			t.Errorf("app.js lacks %s (the DOM contract)", name)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, body := do(t, "GET", url, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// TestServer_clusterThroughput: /api/cluster carries the members and the peers with a
// throughput from their counters, and /api/history the samples.
func TestServer_clusterThroughput(t *testing.T) {
	f := newFakeAgent()
	_, ts, _ := start(t, f, testConfig())
	var c Cluster
	getJSON(t, ts.URL+"/api/cluster", &c)
	if c.Self != "h1" || len(c.Members) != 4 || len(c.Peers) != 2 || c.Members[3].Refused != "subnet_taken" {
		t.Fatalf("cluster: %+v", c)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // 1 MB a sample interval into h2
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				f.addBytes("h2", 250_000, 1000)
			}
		}
	}()
	testkit.Eventually(t, testkit.Timeout, func() bool {
		getJSON(t, ts.URL+"/api/cluster", &c)
		return c.Peers[0].Name == "h2" && c.Peers[0].RxBps > 1_000_000 && c.Peers[0].TxBps > 0 && c.Peers[0].TxBps < c.Peers[0].RxBps && c.Peers[1].RxBps == 0
	}, "h2's throughput in /api/cluster")
	var h History
	getJSON(t, ts.URL+"/api/history", &h)
	if h.IntervalMS != 20 || len(h.Peers["h2"].Rx) == 0 || len(h.Peers["h2"].Rx) > 8 || len(h.Peers["h3"].T) != len(h.Peers["h3"].Rx) {
		t.Errorf("history: %+v", h)
	}
}

// TestSampler_ringAndRates: rates from deltas, a counter that went back reads 0, the
// ring holds History samples oldest first, and a peer that left is dropped.
func TestSampler_ringAndRates(t *testing.T) {
	s := newSampler(3)
	t0 := time.Unix(1000, 0)
	p := func(name string, rx, tx uint64) api.Peer {
		return api.Peer{Name: name, PublicKey: "k" + name, RxBytes: rx, TxBytes: tx}
	}
	s.add(t0, "a", nil, []api.Peer{p("b", 0, 0), p("c", 0, 0)})
	c := s.add(t0.Add(time.Second), "a", nil, []api.Peer{p("b", 1000, 125), p("c", 0, 0)})
	if c.Peers[0].RxBps != 8000 || c.Peers[0].TxBps != 1000 || len(c.Members) != 0 || c.Members == nil {
		t.Fatalf("rates: %+v", c)
	}
	c = s.add(t0.Add(2*time.Second), "a", nil, []api.Peer{p("b", 10, 125)})
	if c.Peers[0].RxBps != 0 || c.Peers[0].TxBps != 0 {
		t.Errorf("a counter that went back: %+v", c.Peers[0])
	}
	for i := 3; i < 6; i++ {
		s.add(t0.Add(time.Duration(i)*time.Second), "a", nil, []api.Peer{p("b", uint64(10+i*100), 125)})
	}
	h := s.history(time.Second)
	if _, ok := h.Peers["c"]; ok || len(s.rings) != 1 {
		t.Errorf("c left but is kept: %v", h.Peers)
	}
	b := h.Peers["b"]
	if len(b.T) != 3 || b.T[0] != t0.Add(3*time.Second).UnixMilli() || b.T[2] != t0.Add(5*time.Second).UnixMilli() || b.Rx[2] != 800 {
		t.Errorf("ring: %+v", b)
	}
}

// sse reads server-sent events.
type sse struct {
	resp *http.Response
	r    *bufio.Reader
}

func openEvents(t *testing.T, url string) (*sse, int) {
	t.Helper()
	resp, err := http.Get(url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{resp: resp, r: bufio.NewReader(resp.Body)}, 200
}

// next returns the next event's name and data; io.EOF when the stream ended.
func (s *sse) next() (string, string, error) {
	var name, data string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data, nil
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
}

// TestServer_events: the state at once, then "cluster" every interval and "services" when
// the catalog changes; the stream count is bounded; Close ends the streams.
func TestServer_events(t *testing.T) {
	f := newFakeAgent()
	s, ts, _ := start(t, f, testConfig())
	ev, code := openEvents(t, ts.URL)
	if code != 200 {
		t.Fatalf("events: %d", code)
	}
	if ct := ev.resp.Header.Get("Content-Type"); ct != "text/event-stream" || ev.resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("events: Content-Type %q", ct)
	}
	got := map[string]string{}
	for len(got) < 3 {
		name, data, err := ev.next()
		if err != nil {
			t.Fatal(err)
		}
		got[name] = data
	}
	var svc Services
	if err := json.Unmarshal([]byte(got["services"]), &svc); err != nil || len(svc.Services) != 1 {
		t.Fatalf("services event: %v %s", err, got["services"])
	}
	web := svc.Services[0]
	if web.Name != "web" || web.Health != "critical" || len(web.Instances) != 2 || web.Passing != 1 || web.Instances[0].Output != "HTTP 200 OK" || web.Instances[1].Output != "" {
		t.Errorf("services: %+v", web)
	}
	var pol Policy
	if err := json.Unmarshal([]byte(got["policy"]), &pol); err != nil || pol.TotalDrops != 3 || len(pol.Rules) != 2 || pol.Rules[1].Index != -1 {
		t.Errorf("policy event: %v %s", err, got["policy"])
	}
	// A registration reaches the stream without anybody asking.
	f.cat.set(append(f.cat.All(), catalog.Instance{Node: "h3", Service: catalog.Service{Name: "db", Port: 5432}}), nil)
	clusters := 0
	for {
		name, data, err := ev.next()
		if err != nil {
			t.Fatal(err)
		}
		if name == "cluster" {
			clusters++
		}
		if name == "services" && strings.Contains(data, `"name":"db"`) {
			break
		}
	}
	// Bounded: MaxClients is 2 here.
	if _, code := openEvents(t, ts.URL); code != 200 {
		t.Fatalf("second stream: %d", code)
	}
	if _, code := openEvents(t, ts.URL); code != http.StatusServiceUnavailable {
		t.Errorf("third stream: %d, want 503", code)
	}
	// Close (the agent stops) ends the open streams.
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ev.next(); err != nil {
				done <- err
				return
			}
		}
	}()
	_ = s.Close()
	select {
	case <-done:
	case <-time.After(testkit.Timeout):
		t.Fatal("the stream is still open after Close")
	}
}

// TestServer_policyTest: the form's question goes to the agent's test as `weft policy
// test` spells the port.
func TestServer_policyTest(t *testing.T) {
	f := newFakeAgent()
	_, ts, _ := start(t, f, testConfig())
	var res PolicyTest
	getJSON(t, ts.URL+"/api/policy/test?from=h2&to=h1&port=80&proto=tcp", &res)
	if res.Verdict != "allow" || res.Explain != "rule web" {
		t.Errorf("80/tcp: %+v", res)
	}
	getJSON(t, ts.URL+"/api/policy/test?from=h2&to=h1&port=53&proto=udp", &res)
	if res.Verdict != "deny" {
		t.Errorf("53/udp: %+v", res)
	}
	getJSON(t, ts.URL+"/api/policy/test?from=h2&to=h1&proto=icmp", &res)
	getJSON(t, ts.URL+"/api/policy/test?from=h2&to=h1&port=22", &res)
	for _, q := range []string{"from=h2&to=h1&port=80&proto=sctp", "from=h2&port=80", "from=h2&to=h1"} {
		if resp, _ := do(t, "GET", ts.URL+"/api/policy/test?"+q, nil); resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", q, resp.StatusCode)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.tested, " ") != "80/tcp 53/udp icmp 22" {
		t.Errorf("asked %q", f.tested)
	}
}

// TestServer_assetsGzipAndETag: a browser gets the assets gzipped, and a revalidation
// with the ETag moves no body.
func TestServer_assetsGzipAndETag(t *testing.T) {
	_, ts, _ := start(t, newFakeAgent(), testConfig())
	req, _ := http.NewRequest("GET", ts.URL+"/assets/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
	if err != nil {
		t.Fatal(err)
	}
	zb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, plain := do(t, "GET", ts.URL+"/assets/app.js", map[string]string{"Accept-Encoding": "identity"})
	if resp.Header.Get("Content-Encoding") != "gzip" || len(zb) >= len(plain)/2 {
		t.Errorf("gzip: %q, %d bytes of %d", resp.Header.Get("Content-Encoding"), len(zb), len(plain))
	}
	checkHeaders(t, "gzipped asset", resp)
	etag := resp.Header.Get("ETag")
	resp, body := do(t, "GET", ts.URL+"/map", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 200 || body == "" {
		t.Errorf("/map with app.js's ETag: %d", resp.StatusCode)
	}
	resp, body = do(t, "GET", ts.URL+"/assets/app.js", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || body != "" || etag == "" {
		t.Errorf("revalidation: %d, %d bytes, etag %q", resp.StatusCode, len(body), etag)
	}
	if resp, body := do(t, "HEAD", ts.URL+"/assets/app.css", nil); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", ts.URL+"/assets/index.html", nil); resp.StatusCode != 404 {
		t.Errorf("/assets/index.html: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", ts.URL+"/favicon.ico", nil); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("/favicon.ico: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestAssets_KnownTypes: every embedded asset has a content type of its own (served with
// nosniff, a file left as application/octet-stream would not load).
func TestAssets_KnownTypes(t *testing.T) {
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		t.Fatal(err)
	}
	as, err := loadAssets(sub)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range as {
		if a.ctype == "application/octet-stream" {
			t.Errorf("asset %s has no content type: add its extension to assetTypes", name)
		}
	}
}
