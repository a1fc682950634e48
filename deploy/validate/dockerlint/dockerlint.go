// Package dockerlint checks a Dockerfile offline with BuildKit's own front end: the checks of
// `docker build --check` (every stage parsed and dispatched, the lint rules of
// github.com/moby/buildkit/frontend/dockerfile/linter, experimental ones included), without a
// Docker engine or a registry.
package dockerlint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Problem is one finding: a lint rule's warning, or the error that stops a build.
type Problem struct {
	Rule    string // the BuildKit rule name; "" for a build error
	Line    int    // 1-based; 0 when BuildKit gives no location
	Message string
}

func (p Problem) String() string {
	if p.Rule == "" {
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Rule, p.Message)
}

// Check lints the Dockerfile dt (its name is used in messages only) for every target, as
// `docker build --check` would on a linux/amd64 builder. It returns nil when there is nothing
// to report. Base images are not fetched: each FROM resolves to a minimal linux/amd64 image
// config, so the checks that need a base image's own ENV or platform are as if it had none.
func Check(ctx context.Context, name string, dt []byte) ([]Problem, error) {
	platform := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	src := llb.NewSourceMap(nil, name, "Dockerfile", dt)
	src.Definition = &llb.Definition{} // where the file came from: nowhere but dt here
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			BuildPlatforms:  []ocispecs.Platform{platform},
			TargetPlatforms: []ocispecs.Platform{platform},
			LinterConfig:    &linter.Config{ExperimentalAll: true},
		},
		SourceMap:      src,
		TargetPlatform: &platform,
		MetaResolver:   offlineResolver{platform: platform},
	})
	if err != nil {
		return nil, fmt.Errorf("linting %s: %w", name, err)
	}
	var out []Problem
	for _, w := range res.Warnings {
		out = append(out, Problem{Rule: w.RuleName, Line: firstLine(w.Location), Message: strings.TrimSpace(w.Detail)})
	}
	if res.Error != nil {
		out = append(out, Problem{Line: firstLine(&res.Error.Location), Message: res.Error.Message})
	}
	return out, nil
}

// offlineResolver answers every image reference with an empty image config of its platform.
type offlineResolver struct{ platform ocispecs.Platform }

func (r offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, err := json.Marshal(ocispecs.Image{Platform: r.platform, Config: ocispecs.ImageConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}})
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromBytes(cfg), cfg, nil
}

func firstLine(loc *pb.Location) int {
	if loc == nil || len(loc.Ranges) == 0 || loc.Ranges[0].Start == nil {
		return 0
	}
	return int(loc.Ranges[0].Start.Line)
}

// Targets returns the Dockerfile's stage names (what `docker build --target` takes).
func Targets(dt []byte) ([]string, error) {
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, err
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range stages {
		if s.Name != "" {
			out = append(out, s.Name)
		}
	}
	return out, nil
}
