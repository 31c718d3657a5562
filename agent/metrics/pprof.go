package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/weftnet/weft/agent/config"
)

// ServePprof serves the pprof handlers on their own mux (never http.DefaultServeMux, which
// the net/http/pprof import also fills but nothing serves) and returns the function that
// stops the server. The address is checked after binding, so a name or an empty host (all
// interfaces) is judged by what was actually bound. A request whose Host is neither an
// address nor localhost (DNS rebinding: host.go) is refused and counted in refused.
func ServePprof(cfg config.DebugConfig, log *slog.Logger, refused *HTTPRefusals) (func(), error) {
	ln, err := net.Listen("tcp", cfg.PprofListen)
	if err != nil {
		return nil, err
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && !cfg.PprofAllowRemote {
		ln.Close()
		return nil, fmt.Errorf("%w: bound %s", config.ErrPprofNotLoopback, ln.Addr())
	}
	srv := &http.Server{Handler: hostGuard("pprof", refused, pprofMux()), ReadHeaderTimeout: 10 * time.Second}
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
