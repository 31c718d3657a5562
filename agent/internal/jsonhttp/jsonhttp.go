package jsonhttp

import (
	"encoding/json"
	"net/http"

	"github.com/weftnet/weft/agent/api"
)

// WriteJSON answers with code and v as indented JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers with code and err as an api.Error.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, api.Error{Error: err.Error()})
}
