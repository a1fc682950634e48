package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, mod string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: mod}}
	}
	tests := []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		want   Info
	}{
		{"no build info", "", nil, Info{Version: Unknown, Commit: Unknown, GoVersion: "go-runtime"}},
		{"linked version wins", "v1.2.3", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-x"}, Settings: vcs("abc", "false")},
			Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8"}},
		{"module version, modified tree", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261204-abc+dirty"}, Settings: vcs("abc", "true")},
			Info{Version: "v0.0.0-20261204-abc+dirty", Commit: "abc", Modified: true, GoVersion: "go1.26.8"}},
		{"no vcs (go test, go run outside a checkout)", "", &debug.BuildInfo{GoVersion: "go1.26.8"},
			Info{Version: Unknown, Commit: Unknown, GoVersion: "go1.26.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.linked, tt.bi, tt.bi != nil)
			if tt.bi == nil {
				got.GoVersion = "go-runtime" // runtime.Version(), whatever it is
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1", Commit: "abc", GoVersion: "go1.26.8"}, "v1 (commit abc) go1.26.8"},
		{Info{Version: "v1", Commit: "abc", Modified: true, GoVersion: "go1.26.8"}, "v1 (commit abc, modified) go1.26.8"},
	} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.in, got, tt.want)
		}
	}
}
