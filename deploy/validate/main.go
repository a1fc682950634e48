// Command validate is `make check-deploy`'s checker, offline: rendered Kubernetes manifests
// against the schemas of a Kubernetes release and the stack's rules (package check), the
// Dockerfile with BuildKit's linter (package dockerlint), and the binaries the images hold
// (package static), and each of the stack's containers against them: its image is a target of
// the Dockerfile whose binary takes its arguments (package images; with -dockerfile and -static).
// It prints one line per problem and exits 1 if there is any.
//
//	go run . -kubernetes v1.37.2 -dockerfile ../../Dockerfile -gateway BIN -repo ../.. \
//	  -static DIR -external Secret/passport-keys,ConfigMap/passport-jwks RENDERED.yaml...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/shopgate/deploy/validate/check"
	"github.com/acme/shopgate/deploy/validate/dockerlint"
	"github.com/acme/shopgate/deploy/validate/images"
	"github.com/acme/shopgate/deploy/validate/k8sspec"
	"github.com/acme/shopgate/deploy/validate/schema"
	"github.com/acme/shopgate/deploy/validate/static"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errProblems) {
			fmt.Fprintln(os.Stderr, "validate:", err)
		}
		os.Exit(1)
	}
}

var errProblems = errors.New("problems found")

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("kubernetes", "", "Kubernetes release whose OpenAPI schemas to check against (module k8s.io/kubernetes; required unless -openapi)")
	sum := fs.String("kubernetes-sum", "", "the h1: module hash that release must have (default: not compared)")
	openapi := fs.String("openapi", "", "a Kubernetes swagger.json to use instead of -kubernetes")
	goBin := fs.String("go", "go", "the go command, for -kubernetes")
	dockerfile := fs.String("dockerfile", "", "a Dockerfile to lint (default: none)")
	gateway := fs.String("gateway", "", "a gateway binary whose `check -config` checks the gateway's ConfigMap (default: not checked)")
	repo := fs.String("repo", ".", "the repository the gateway checks routes in (its protos)")
	staticDir := fs.String("static", "", "a folder of binaries that must all be statically linked (default: none)")
	external := fs.String("external", "", "comma-separated Kind/name of objects made outside the manifests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n := 0
	report := func(where string, problems []string) {
		for _, p := range problems {
			fmt.Fprintf(stdout, "%s: %s\n", where, p)
		}
		n += len(problems)
	}
	if fs.NArg() > 0 {
		path := *openapi
		if path == "" {
			if *version == "" {
				return errors.New("-kubernetes or -openapi is required to check manifests")
			}
			var err error
			if path, err = k8sspec.Swagger(*goBin, *version, *sum); err != nil {
				return err
			}
		}
		v, err := schema.Load(path)
		if err != nil {
			return err
		}
		cfg := check.Config{Schema: v}
		if *external != "" {
			cfg.Rules.External = strings.Split(*external, ",")
		}
		if *gateway != "" {
			cfg.GatewayCheck = check.GatewayCheck(*gateway, *repo)
		}
		if *dockerfile != "" && *staticDir != "" {
			dt, err := os.ReadFile(*dockerfile)
			if err != nil {
				return err
			}
			targets, err := dockerlint.Targets(dt)
			if err != nil {
				return fmt.Errorf("%s: %w", *dockerfile, err)
			}
			cfg.Container = images.Checker{Targets: targets, Binaries: *staticDir}.Check
		}
		for _, file := range fs.Args() {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			res, err := check.Rendered(data, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			report(file, res.Problems)
			gw := "gateway YAML not checked"
			if res.GatewayChecked {
				gw = "gateway YAML checked by `gateway check`"
			}
			fmt.Fprintf(stderr, "%s: %d objects against Kubernetes %s schemas (strict), typed decoding, the stack's rules; %s; %d containers' Dockerfile targets and arguments checked; %d problems\n",
				file, res.Objects, schemaName(*version, path), gw, res.ContainersChecked, len(res.Problems))
		}
	}
	if *dockerfile != "" {
		dt, err := os.ReadFile(*dockerfile)
		if err != nil {
			return err
		}
		problems, err := dockerlint.Check(context.Background(), filepath.Base(*dockerfile), dt)
		if err != nil {
			return err
		}
		var lines []string
		for _, p := range problems {
			lines = append(lines, p.String())
		}
		report(*dockerfile, lines)
		fmt.Fprintf(stderr, "%s: BuildKit lint (all rules, experimental included): %d problems\n", *dockerfile, len(lines))
	}
	if *staticDir != "" {
		entries, err := os.ReadDir(*staticDir)
		if err != nil {
			return err
		}
		var lines []string
		for _, e := range entries {
			if err := static.Check(filepath.Join(*staticDir, e.Name())); err != nil {
				lines = append(lines, fmt.Sprintf("%s: %v", e.Name(), err))
			}
		}
		report(*staticDir, lines)
		fmt.Fprintf(stderr, "%s: %d binaries, %d not static\n", *staticDir, len(entries), len(lines))
	}
	if n > 0 {
		return fmt.Errorf("%w: %d", errProblems, n)
	}
	return nil
}

func schemaName(version, path string) string {
	if version != "" {
		return version
	}
	return path
}
