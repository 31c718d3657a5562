package clients

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
)

// Routes adds GET and POST /v1/clients and DELETE /v1/clients/NAME to mux.
func (c *Clients) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/clients", func(w http.ResponseWriter, r *http.Request) { jsonhttp.WriteJSON(w, http.StatusOK, c.List()) })
	mux.HandleFunc("POST /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		var req api.ClientAdd
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad client request: %w", err))
			return
		}
		if !c.d.DatapathUp() {
			jsonhttp.WriteError(w, http.StatusServiceUnavailable, errors.New("the datapath is not up yet"))
			return
		}
		ep, err := c.endpoint(req.Endpoint)
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
			return
		}
		wc, priv, err := c.add(req)
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, api.ClientAdded{Client: wc, Config: c.wgQuick(wc, priv, ep).String()})
	})
	mux.HandleFunc("DELETE /v1/clients/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := c.remove(r.PathValue("name")); err != nil {
			jsonhttp.WriteError(w, http.StatusNotFound, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	})
}
