// Command mkdeb builds weft's Debian package from packaging/nfpm.yaml with nfpm, used as a
// Go module (no prebuilt tool): `make deb` runs it from the repository's root.
//
//	go run ./packaging/mkdeb -bin bin/weft -docs bin/docs -version 0.1.0 -out dist
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
)

func main() {
	bin := flag.String("bin", "bin/weft", "the weft binary to package")
	docs := flag.String("docs", "bin/docs", "directory holding man/ and completion/ (weft gen-docs)")
	version := flag.String("version", "", "package version (a Debian version; made one if it starts with no digit)")
	arch := flag.String("arch", runtime.GOARCH, "Debian architecture")
	config := flag.String("config", "packaging/nfpm.yaml", "nfpm configuration")
	out := flag.String("out", "dist", "output directory")
	flag.Parse()
	path, err := build(*config, *bin, *docs, debVersion(*version), *arch, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// debVersion turns `git describe` output into a Debian version: it must start with a digit
// and may not hold '-' outside the revision ("v0.3-4-gabc" → "0.3+4.gabc", "abc123" →
// "0.0~gitabc123").
func debVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if v == "" {
		return "0.0~dev"
	}
	v = strings.ReplaceAll(v, "-", ".")
	if v[0] < '0' || v[0] > '9' {
		return "0.0~git" + v
	}
	if i := strings.IndexByte(v, '.'); i > 0 {
		// keep the first two numeric parts, the rest after a '+'
		parts := strings.SplitN(v, ".", 3)
		if len(parts) == 3 {
			return parts[0] + "." + parts[1] + "+" + parts[2]
		}
	}
	return v
}

func build(config, bin, docs, version, arch, out string) (string, error) {
	for _, p := range []string{bin, filepath.Join(docs, "man"), filepath.Join(docs, "completion")} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w (run make build and weft gen-docs first: make deb does)", err)
		}
	}
	env := map[string]string{"WEFT_BIN": bin, "WEFT_DOCS": docs, "WEFT_VERSION": version, "WEFT_ARCH": arch}
	cfg, err := nfpm.ParseFileWithEnvMapping(config, func(k string) string { return env[k] })
	if err != nil {
		return "", fmt.Errorf("%s: %w", config, err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	pkgr, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(out, pkgr.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("nfpm deb: %w", err)
	}
	return path, f.Close()
}
