package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/discovery/catalog"
)

// Routes adds the control API's /v1/services… and /v1/local-services routes to mux;
// running returns the catalog, nil while none runs (then they answer 503).
func Routes(mux *http.ServeMux, running func() *catalog.Catalog) {
	catalogOf := func(w http.ResponseWriter) *catalog.Catalog {
		c := running()
		if c == nil {
			jsonhttp.WriteError(w, http.StatusServiceUnavailable, errors.New("the service catalog is not running"))
			return nil
		}
		return c
	}
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		if s := r.URL.Query().Get("index"); s != "" {
			idx, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("index %q: not a number", s))
				return
			}
			wait := 5 * time.Minute
			if ws := r.URL.Query().Get("wait"); ws != "" {
				if wait, err = time.ParseDuration(ws); err != nil || wait <= 0 {
					jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("wait %q: not a positive duration like 30s", ws))
					return
				}
			}
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			_, _ = c.Wait(ctx, idx) // a timeout returns the unchanged state, as Consul does
			cancel()
		}
		idx := c.Index()
		w.Header().Set("X-Weft-Index", strconv.FormatUint(idx, 10))
		inst := c.All()
		if inst == nil {
			inst = []catalog.Instance{}
		}
		jsonhttp.WriteJSON(w, http.StatusOK, api.ServicesResponse{Index: idx, Instances: inst})
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		all := r.URL.Query().Get("all") != ""
		inst := c.Instances(strings.ToLower(r.PathValue("name")), !all)
		if inst == nil {
			inst = []catalog.Instance{}
		}
		jsonhttp.WriteJSON(w, http.StatusOK, inst)
	})
	mux.HandleFunc("GET /v1/local-services", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, c.Local())
	})
	mux.HandleFunc("POST /v1/services", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		var s catalog.Service
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad service: %w", err))
			return
		}
		if err := c.Register(s); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, catalog.ErrCatalogFull) {
				code = http.StatusInsufficientStorage
			}
			jsonhttp.WriteError(w, code, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("DELETE /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		if err := c.Deregister(r.PathValue("name")); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, catalog.ErrUnknownService) {
				code = http.StatusNotFound
			}
			jsonhttp.WriteError(w, code, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("PUT /v1/services/{name}/renew", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		if err := c.Renew(r.PathValue("name")); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, catalog.ErrUnknownService) {
				code = http.StatusNotFound
			}
			jsonhttp.WriteError(w, code, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	})
}
