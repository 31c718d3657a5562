package agent

// The agent's side of the web console (agent/console): what it reads of the agent, and
// its listener on ui.listen.

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/console"
	"github.com/weftnet/weft/agent/internal/httpguard"
)

// consoleSource is what the console reads of a; the functions read a when called.
func consoleSource(a *Agent) console.Source {
	s := console.Source{
		Self:    func() string { return a.cfg.Name },
		Members: a.Members,
		Peers:   a.Peers,
		Policy: func() (api.PolicyStatus, error) {
			if a.pol == nil {
				return api.PolicyStatus{}, errPolicyNotRunning
			}
			return a.pol.Status(), nil
		},
		PolicyTest: func(from, to, port string) (api.PolicyTest, error) {
			if a.pol == nil {
				return api.PolicyTest{}, errPolicyNotRunning
			}
			return a.pol.Test(from, to, port)
		},
	}
	if a.cat != nil {
		s.Catalog = a.cat.cat
	}
	return s
}

var errPolicyNotRunning = errors.New("network policy is not running yet (the agent is starting)")

// startConsole serves the console on ui.listen (nothing when empty) until the returned
// function is called. The default loopback address failing to bind (another agent or
// program holds it) is a warning: the agent runs without its console. An address the
// operator chose is an error, as metrics_listen's is.
func (a *Agent) startConsole() (func(), error) {
	u := a.cfg.UI
	if u.Listen == "" {
		return func() {}, nil
	}
	var tok string
	if u.TokenFile != "" {
		var err error
		if tok, err = httpguard.ReadTokenFile("ui.token_file", u.TokenFile); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", u.Listen)
	if err != nil {
		if u.Listen == config.DefaultUIListen {
			a.log.Warn("web console not started: set ui.listen (--ui-listen) to a free address, or to \"\" to turn it off",
				"listen", u.Listen, "err", err)
			return func() {}, nil
		}
		return nil, fmt.Errorf("ui.listen %s: %w (set ui.listen to a free address, or to \"\" to turn the console off)", u.Listen, err)
	}
	ip := ln.Addr().(*net.TCPAddr).IP
	if !ip.IsLoopback() && tok == "" { // a name that resolved off loopback
		ln.Close()
		return nil, fmt.Errorf("ui.listen %s bound %s, not a loopback address: set ui.token_file", u.Listen, ln.Addr())
	}
	srv, err := console.New(console.Config{Token: tok, Logger: a.log, Refused: func(reason string) { a.httpRefused.Add("ui", reason) }}, consoleSource(a))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("web console: %w", err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil {
			a.log.Error("web console stopped", "err", err)
		}
	}()
	host := ip.String()
	if ip.IsUnspecified() {
		host = "127.0.0.1" // every address, loopback too
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + "/"
	a.uiURL.Store(&url)
	a.log.Info("web console", "url", url, "token", tok != "")
	return func() {
		a.uiURL.Store(nil)
		_ = srv.Close()
	}, nil
}

// consoleStatus adds the console's address to the status (`weft status`, `weft ui`).
func (a *Agent) consoleStatus(st *api.Status) {
	if u := a.uiURL.Load(); u != nil {
		st.UI = *u
		st.UIToken = a.cfg.UI.TokenFile != ""
	}
}
