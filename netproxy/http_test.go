package netproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
)

func startHTTP(t *testing.T, user, pass string) (*HTTPProxy, *Counters) {
	t.Helper()
	cnt := &Counters{}
	p, err := ServeHTTP(listen(t), HTTPConfig{Network: hostNet{}, Resolve: resolver, Username: user, Password: pass, Counters: cnt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, cnt
}

func TestHTTPProxy_Connect(t *testing.T) {
	port := testkit.TCPEcho(t).Port()
	p, cnt := startHTTP(t, "", "")
	c := dial(t, p.Addr())
	fmt.Fprintf(c, "CONNECT echo.service.weft:%d HTTP/1.1\r\nHost: echo.service.weft:%d\r\n\r\n", port, port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	_, _ = c.Write([]byte("tunnel"))
	got := make([]byte, 6)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "tunnel" {
		t.Fatalf("echo %q %v", got, err)
	}
	if cnt.Snapshot()["http_connect"] != 1 {
		t.Fatalf("counters %v", cnt.Snapshot())
	}
}

func TestHTTPProxy_Refusals(t *testing.T) {
	p, cnt := startHTTP(t, "", "")
	cases := []struct {
		req  string
		code int
	}{
		{"CONNECT 192.0.2.1:443 HTTP/1.1\r\nHost: 192.0.2.1:443\r\n\r\n", http.StatusForbidden},
		{"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", http.StatusForbidden},
		{"CONNECT nope.service.weft:80 HTTP/1.1\r\nHost: nope.service.weft:80\r\n\r\n", http.StatusBadGateway},
		{"CONNECT echo.service.weft HTTP/1.1\r\nHost: echo.service.weft\r\n\r\n", http.StatusBadRequest},
		{"CONNECT echo.service.weft:0 HTTP/1.1\r\nHost: echo.service.weft:0\r\n\r\n", http.StatusBadRequest},
		{"GET / HTTP/1.1\r\nHost: echo.service.weft\r\n\r\n", http.StatusBadRequest},
		{"GET ftp://echo.service.weft/ HTTP/1.1\r\nHost: echo.service.weft\r\n\r\n", http.StatusBadRequest},
		{"GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Junk: "+strings.Repeat("a", 1000)+"\r\n", 64) + "\r\n", http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range cases {
		c := dial(t, p.Addr())
		_, _ = io.WriteString(c, tc.req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != tc.code {
			t.Fatalf("%q: %v %v, want %d", tc.req[:30], resp, err, tc.code)
		}
		c.Close()
	}
	if s := cnt.Snapshot(); s["not_allowed"] != 2 || s["unknown_name"] != 1 || s["http_bad_request"] != 4 {
		t.Fatalf("counters %v", s)
	}
}

func TestHTTPProxy_ForwardAndAuth(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Error("Proxy-Authorization forwarded to the origin")
		}
		fmt.Fprint(w, "hello from ", r.URL.Path)
	}))
	defer web.Close()
	port := web.Listener.Addr().(*net.TCPAddr).Port
	p, cnt := startHTTP(t, "alice", "s3cret")
	for _, tc := range []struct {
		user *url.Userinfo
		code int
	}{{url.UserPassword("alice", "s3cret"), 200}, {url.UserPassword("alice", "nope"), 407}, {nil, 407}} {
		pu := &url.URL{Scheme: "http", Host: p.Addr().String(), User: tc.user}
		cl := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
		resp, err := cl.Get(fmt.Sprintf("http://echo.service.weft:%d/x", port))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cl.CloseIdleConnections()
		if resp.StatusCode != tc.code || tc.code == 200 && string(body) != "hello from /x" {
			t.Fatalf("%v: %d %q", tc.user, resp.StatusCode, body)
		}
	}
	if s := cnt.Snapshot(); s["http_auth_failed"] != 2 || s["http_forward"] != 1 {
		t.Fatalf("counters %v", s)
	}
}
