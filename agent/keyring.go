package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/discovery/membership"
)

// The gossip keyring over the control API (`weft keyring`). Each operation is one Serf
// query answered by every member, so it acts on the whole cluster:
//
//	GET    /v1/keyring              KeyringStatus
//	POST   /v1/keyring   KeyRequest install a key everywhere
//	PUT    /v1/keyring   KeyRequest make it the key everyone sends with
//	DELETE /v1/keyring   KeyRequest remove it everywhere
//
// Each member keeps its keyring in STATE_DIR/serf.keyring, which wins over gossip.key at
// the next start (the rotated-out key may still be in the configuration).

func (a *Agent) keyringRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/keyring", func(w http.ResponseWriter, r *http.Request) {
		if a.gsp == nil {
			jsonhttp.WriteError(w, http.StatusConflict, errGossipOff)
			return
		}
		st, err := a.gsp.Cluster().ListKeys()
		writeKeyring(w, st, err)
	})
	op := func(f func(*membership.Cluster, string) (membership.KeyringStatus, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if a.gsp == nil {
				jsonhttp.WriteError(w, http.StatusConflict, errGossipOff)
				return
			}
			var req api.KeyRequest
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Key == "" {
				jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad keyring request: want {\"key\": BASE64}: %v", err))
				return
			}
			st, err := f(a.gsp.Cluster(), req.Key)
			writeKeyring(w, st, err)
		}
	}
	mux.HandleFunc("POST /v1/keyring", op((*membership.Cluster).InstallKey))
	mux.HandleFunc("PUT /v1/keyring", op((*membership.Cluster).UseKey))
	mux.HandleFunc("DELETE /v1/keyring", op((*membership.Cluster).RemoveKey))
}

var errGossipOff = errors.New("gossip is disabled on this agent: there is no keyring")

func writeKeyring(w http.ResponseWriter, st membership.KeyringStatus, err error) {
	if err != nil {
		code := http.StatusBadGateway // some member refused or did not answer
		if errors.Is(err, membership.ErrGossipKeySize) || !errors.Is(err, membership.ErrKeyring) {
			code = http.StatusBadRequest
		}
		jsonhttp.WriteError(w, code, err)
		return
	}
	jsonhttp.WriteJSON(w, http.StatusOK, st)
}
