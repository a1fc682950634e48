package dockerlint_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/dockerlint"
	"github.com/acme/shopgate/deploy/validate/internal/spectest"
)

func TestCheck(t *testing.T) {
	repoDockerfile, err := os.ReadFile(filepath.Join(spectest.Repo(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dt   string
		want []string // "line N: Rule" prefixes, in order
	}{
		{"the repository's Dockerfile", string(repoDockerfile), nil},
		{"clean", "FROM scratch AS app\nCOPY app /app\nENTRYPOINT [\"/app\"]\n", nil},
		{"casing", "FROM golang:1.26 as build\nFROM scratch AS Final\n", []string{"line 1: FromAsCasing", "line 2: StageNameCasing"}},
		{"shell-form entrypoint", "FROM scratch\nENTRYPOINT /app\n", []string{"line 2: JSONArgsRecommended"}},
		{"secret in ENV", "FROM scratch\nENV API_TOKEN=x\n", []string{"line 2: SecretsUsedInArgOrEnv"}},
		{"undefined variable", "FROM scratch\nENV A=$NOPE\n", []string{"line 2: UndefinedVar"}},
		{"undefined ARG in FROM", "FROM golang:${GO_VERSON}\n", []string{"line 1: InvalidDefaultArgInFrom", "line 1: UndefinedArgInFrom", "line 1: failed to parse stage name"}},
		{"duplicate stage", "FROM scratch AS a\nFROM scratch AS a\n", []string{"line 2: "}},
		{"unknown instruction", "FROM scratch\nCOPPY a b\n", []string{"line 2: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dockerlint.Check(context.Background(), "Dockerfile", []byte(tt.dt))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, p := range got {
				if !strings.HasPrefix(p.String(), tt.want[i]) {
					t.Errorf("problem %d: %q, want it to start %q", i, p, tt.want[i])
				}
			}
		})
	}
}
