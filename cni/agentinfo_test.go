package cni

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// The plugin waits for an agent that is still starting: the socket appears after ADD began.
func TestFetchHostNetwork_WaitsForAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "weft.sock")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(testHostNetwork) })}
	t.Cleanup(func() { srv.Close() })
	go func() {
		time.Sleep(500 * time.Millisecond)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return
		}
		_ = srv.Serve(ln)
	}()
	hn, err := fetchHostNetwork(context.Background(), sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if hn.Subnet.String() != "10.42.7.0/24" || hn.MTU != 1412 || !hn.Containers {
		t.Fatalf("%+v", hn)
	}
}
