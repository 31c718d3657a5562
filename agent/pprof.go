package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// DebugConfig holds diagnostics that are off by default.
type DebugConfig struct {
	// PprofListen serves Go's profiles (net/http/pprof: /debug/pprof/, profile, heap, trace …)
	// on this TCP address; empty: off. It must be a loopback address unless PprofAllowRemote:
	// a profile shows memory contents and a CPU profile costs CPU, so it is for the operator
	// on the host (`go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10`).
	PprofListen string `yaml:"pprof_listen"`
	// PprofAllowRemote lets PprofListen bind a non-loopback address.
	PprofAllowRemote bool `yaml:"pprof_allow_remote"`
}

// ErrPprofNotLoopback: debug.pprof_listen names an address other hosts can reach, without
// debug.pprof_allow_remote.
var ErrPprofNotLoopback = errors.New("pprof listener must be on a loopback address (or set debug.pprof_allow_remote)")

// servePprof serves the pprof handlers on their own mux (never http.DefaultServeMux, which
// the net/http/pprof import also fills but nothing serves) and returns the function that
// stops the server. The address is checked after binding, so a name or an empty host (all
// interfaces) is judged by what was actually bound.
func servePprof(cfg DebugConfig, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", cfg.PprofListen)
	if err != nil {
		return nil, err
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && !cfg.PprofAllowRemote {
		ln.Close()
		return nil, fmt.Errorf("%w: bound %s", ErrPprofNotLoopback, ln.Addr())
	}
	srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", "err", err)
		}
	}()
	log.Info("pprof", "listen", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// pprofMux routes /debug/pprof/ as net/http/pprof's init does on the default mux.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also heap, goroutine, allocs, block, mutex, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
