package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	const rev = "4c51245aa1b2c3d4e5f60718293a4b5c6d7e8f90"
	tests := []struct {
		name           string
		stampV, stampC string
		bi             *debug.BuildInfo
		wantV, wantC   string
	}{
		{"stamped wins", "v0.2.0-3-gabcdef0-dirty", "abcdef0123", vcs(rev, "false"), "v0.2.0-3-gabcdef0-dirty", "abcdef0123"},
		{"stamped version, commit from vcs", "4c51245", "", vcs(rev, "false"), "4c51245", rev},
		{"vcs clean", "", "", vcs(rev, "false"), "4c51245", rev},
		{"vcs dirty", "", "", vcs(rev, "true"), "4c51245-dirty", rev},
		{"go install module@version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}}, "v0.3.1", ""},
		{"nothing known", "", "", nil, Fallback, ""},
		{"no vcs, devel", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, Fallback, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.stampV, tt.stampC, tt.bi)
			if got.Version != tt.wantV || got.Commit != tt.wantC {
				t.Errorf("resolve = %q %q, want %q %q", got.Version, got.Commit, tt.wantV, tt.wantC)
			}
			if got.GoVersion != runtime.Version() || got.OS != runtime.GOOS || got.Arch != runtime.GOARCH {
				t.Errorf("runtime fields %+v", got)
			}
		})
	}
}

func TestGet_NotEmpty(t *testing.T) {
	if in := Get(); in.Version == "" || in.GoVersion == "" {
		t.Fatalf("Get() = %+v", in)
	}
}
