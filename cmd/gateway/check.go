package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/acme/shopgate/gateway/apicheck"
	"github.com/acme/shopgate/gateway/config"
)

// errProblems is returned when check found problems (exit status 1); they are printed already.
var errProblems = errors.New("check: problems found")

// runCheck is `gateway check`: the protos' HTTP API and policies (apicheck.Check), optionally a
// configuration against them (-config) and the changes since a git ref that a client would feel
// (-against), each problem one line "file:line: message" on stdout.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	protoDir := fs.String("proto", "proto", "folder of the protos to check")
	imports := fs.String("import", "third_party/googleapis", "comma-separated folders imports also resolve in")
	cfgPath := fs.String("config", "", "a gateway YAML configuration to check against the protos (default: none)")
	against := fs.String("against", "", "a git ref (such as the merge base with main) whose protos to compare the HTTP API with (default: no comparison)")
	repo := fs.String("repo", ".", "the git repository -against reads (its work tree)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src := apicheck.Source{Dir: *protoDir}
	for _, d := range strings.Split(*imports, ",") {
		if d = strings.TrimSpace(d); d != "" {
			src.ImportPaths = append(src.ImportPaths, d)
		}
	}
	schema, err := apicheck.Compile(ctx, src)
	if err != nil {
		return err
	}
	probs := apicheck.Check(schema)
	if *cfgPath != "" {
		cfg, err := config.LoadEnv(*cfgPath, os.Environ()) // as served: with the overrides
		if err != nil {
			return err
		}
		probs = append(probs, apicheck.CheckConfig(schema, cfg, *cfgPath)...)
	}
	n := len(probs)
	for _, p := range probs {
		fmt.Fprintln(stdout, p)
	}
	if *against != "" {
		changes, acks, err := apicheck.Against(ctx, *repo, *against, schema, src)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if c.Acknowledged(acks) {
				fmt.Fprintf(stderr, "acknowledged: %s\n", c)
				continue
			}
			fmt.Fprintln(stdout, c)
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: %d", errProblems, n)
	}
	return nil
}
