// Package buildinfo tells what a binary was built from: its version, the VCS commit and whether
// the tree had uncommitted changes, and the Go version. Every binary prints it with -version and
// exports it as the build_info gauge (always 1).
//
// The commit and the modified flag come from runtime/debug.ReadBuildInfo (the vcs.revision and
// vcs.modified settings the go command stamps when it builds inside a git checkout). The version
// is the one given at link time, else the main module's version from the build information
// (the go command derives one from the VCS, e.g. v0.0.0-20261204233900-6c47af8a1b2c+dirty, or
// "(devel)"); `make build` passes `git describe --tags --always --dirty` and the commit:
//
//	go build -ldflags "-X github.com/acme/shopgate/internal/buildinfo.version=v1.2.3 \
//	    -X github.com/acme/shopgate/internal/buildinfo.commit=$(git rev-parse HEAD)" ./cmd/...
package buildinfo

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// version and commit are set at link time (-ldflags -X); empty: the build information's. The
// commit is needed where the go command cannot stamp it: a build from a git worktree (its .git
// is a file, which the go command does not take for a repository) or with -buildvcs=false.
var version, commit string

// Unknown stands for what the build information does not say (a build outside a checkout, or
// a test binary).
const Unknown = "unknown"

// Info is what a binary was built from.
type Info struct {
	// Version is the link-time version, else the main module's version, else Unknown.
	Version string
	// Commit is the VCS revision (full hash), or Unknown.
	Commit string
	// Modified is true when the tree had uncommitted changes at build time.
	Modified bool
	// GoVersion is the Go toolchain's version (runtime.Version()).
	GoVersion string
}

var read = sync.OnceValue(func() Info {
	bi, ok := debug.ReadBuildInfo()
	in := fromBuildInfo(version, bi, ok)
	if commit != "" {
		in.Commit = commit
	}
	return in
})

// Read returns the running binary's Info (read once).
func Read() Info { return read() }

func fromBuildInfo(linked string, bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: linked, Commit: Unknown, GoVersion: runtime.Version()}
	if !ok || bi == nil {
		if in.Version == "" {
			in.Version = Unknown
		}
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if in.Version == "" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = Unknown
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				in.Commit = s.Value
			}
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the -version line: "VERSION (commit COMMIT[, modified]) GOVERSION".
func (in Info) String() string {
	mod := ""
	if in.Modified {
		mod = ", modified"
	}
	return fmt.Sprintf("%s (commit %s%s) %s", in.Version, in.Commit, mod, in.GoVersion)
}

// Print writes the -version output, "NAME VERSION (commit COMMIT) GOVERSION", to w.
func Print(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, Read())
}

// Flag defines -version on fs, so that -h lists it; the binary answers it with PrintIfRequested
// before parsing.
func Flag(fs *flag.FlagSet) {
	fs.Bool("version", false, "print the version and commit, and exit")
}

// PrintIfRequested prints the version (Print) to w and returns true when args ask for it with
// -version (or --version, -version=true) anywhere before "--", a subcommand's flags included.
func PrintIfRequested(args []string, w io.Writer, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch strings.TrimLeft(a, "-") {
		case "version", "version=true", "version=1":
			Print(w, name)
			return true
		}
	}
	return false
}

// Collector returns the build_info gauge: always 1, its labels version, commit, modified
// ("true" or "false") and go_version. Register it on each binary's registry.
func Collector() prometheus.Collector {
	in := Read()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "build_info",
		Help: "Always 1; the labels say what the binary was built from.",
		ConstLabels: prometheus.Labels{
			"version": in.Version, "commit": in.Commit, "go_version": in.GoVersion,
			"modified": fmt.Sprint(in.Modified),
		},
	}, func() float64 { return 1 })
}
