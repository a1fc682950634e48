package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestHelp: -h of the command and of every subcommand prints its usage and succeeds (main exits
// 0 when run returns nil), and the command's usage lists every subcommand.
func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // in the printed usage
	}{
		{"gateway", []string{"-h"}, []string{"gateway routes", "gateway check", "gateway passport-keys new", "gateway passport-keys jwks", "-config"}},
		{"check", []string{"check", "-h"}, []string{"-config", "-against"}},
		{"gateway -help", []string{"-help"}, []string{"gateway routes", "-config"}},
		{"routes", []string{"routes", "-h"}, []string{"gateway routes", "-config"}},
		{"passport-keys", []string{"passport-keys", "-h"}, []string{"passport-keys new", "passport-keys jwks"}},
		{"passport-keys new", []string{"passport-keys", "new", "-h"}, []string{"-dir"}},
		{"passport-keys jwks", []string{"passport-keys", "jwks", "-h"}, []string{"-out"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := run(context.Background(), tt.args, &out, &errOut); err != nil {
				t.Fatalf("run(%q) = %v, want nil (exit 0)", tt.args, err)
			}
			help := out.String() + errOut.String()
			for _, w := range tt.want {
				if !strings.Contains(help, w) {
					t.Errorf("usage lacks %q:\n%s", w, help)
				}
			}
		})
	}
}

// TestHelpListsOnlyRealSubcommands: every subcommand the usage names answers its own -h, so
// the list cannot name one that is gone.
func TestHelpListsOnlyRealSubcommands(t *testing.T) {
	var errOut bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &errOut); err != nil {
		t.Fatal(err)
	}
	subs := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+gateway ([a-z][a-z-]*(?: [a-z]+)?)`).FindAllStringSubmatch(errOut.String(), -1) {
		subs[m[1]] = true
	}
	if len(subs) < 3 {
		t.Fatalf("usage names %d subcommands, want at least 3:\n%s", len(subs), errOut.String())
	}
	for sub := range subs {
		args := append(strings.Fields(sub), "-h")
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Errorf("usage names %q, but %q fails: %v", sub, args, err)
		}
	}
}

// TestUnknownSubcommand: a mistyped subcommand is refused, not served with the default file.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"rotues"}, {"rotues", "-h"}, {"-config", "x.yaml", "extra"}} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "unknown subcommand") {
			t.Errorf("run(%q) = %v, want an unknown subcommand error", args, err)
		}
	}
}
