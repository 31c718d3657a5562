// Package version says which build of weft this is: the version and commit stamped by
// `make build` (-ldflags -X, from git describe), or else what the Go toolchain recorded
// from version control (debug.ReadBuildInfo), so `go build` and `go install` builds
// also say where they came from.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile:
//
//	-X github.com/weftnet/weft/internal/version.version=$(git describe --always --dirty)
//	-X github.com/weftnet/weft/internal/version.commit=$(git rev-parse HEAD)
//
// Empty: fall back to the build info.
var (
	version string
	commit  string
)

// Fallback is the version of a build that carries neither a stamp nor VCS information
// (e.g. built from a source archive).
const Fallback = "0.1.0-dev"

// Info describes this build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// Get returns this build's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// String is Get().Version.
func String() string { return Get().Version }

// resolve prefers the link-time stamps and fills what is missing from bi (which may be nil).
func resolve(stampedVersion, stampedCommit string, bi *debug.BuildInfo) Info {
	in := Info{Version: stampedVersion, Commit: stampedCommit, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	var rev string
	var dirty bool
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if in.Commit == "" {
		in.Commit = rev
	}
	if in.Version == "" {
		switch {
		case bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)":
			in.Version = bi.Main.Version // go install module@version
		case rev != "":
			in.Version = rev[:min(len(rev), 7)] // what git describe --always prints without tags
			if dirty {
				in.Version += "-dirty"
			}
		default:
			in.Version = Fallback
		}
	}
	return in
}
