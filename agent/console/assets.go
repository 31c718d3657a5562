package console

// The embedded page: read once at New, each file kept as is and gzipped on its first
// request (a cold /map then moves about a third of the bytes; compressing every asset at
// start was a seventh of an agent's start-up CPU, paid by every host whether or not anyone
// opens the console), served with its type and a strong ETag so a reload revalidates
// instead of downloading again.

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
)

// assetTypes are the content types of the assets' extensions (the mime package would read
// the system's MIME database at start for these few).
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}

type asset struct {
	body  []byte
	ctype string
	etag  string

	gzOnce sync.Once
	gz     []byte // nil until the first request, and when gzip does not make it smaller
}

// gzipped is the asset gzipped, made on the first call; nil when that is no smaller.
func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		_, _ = zw.Write(a.body)
		_ = zw.Close()
		if z.Len() < len(a.body) {
			a.gz = z.Bytes()
		}
	})
	return a.gz
}

// loadAssets reads every file of the embedded assets directory.
func loadAssets(fsys fs.FS) (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct, ok := assetTypes[path.Ext(p)]
		if !ok {
			ct = "application/octet-stream"
		}
		out[p] = &asset{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return out, err
}

// serve writes a, gzipped when the client takes it; 304 when its ETag matches.
func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: a new binary brings new assets
	h.Set("Vary", "Accept-Encoding")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(r) {
		if gz := a.gzipped(); gz != nil {
			h.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, e := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if name, q, _ := strings.Cut(strings.TrimSpace(e), ";"); strings.EqualFold(name, "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}

// serveAsset answers /assets/NAME.
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request) {
	a := s.assets[r.PathValue("name")]
	if a == nil || r.PathValue("name") == "index.html" {
		http.NotFound(w, r)
		return
	}
	a.serve(w, r)
}

// page answers every page URL with index.html: the script renders the view the URL names.
func (s *Server) page(w http.ResponseWriter, r *http.Request) { s.assets["index.html"].serve(w, r) }
