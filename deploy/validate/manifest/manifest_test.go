package manifest_test

import (
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/manifest"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // IDs
		err      string
	}{
		{"two documents and empty ones", "---\nkind: A\nmetadata: {name: a}\n---\n---\n# only a comment\n---\nkind: B\nmetadata:\n  name: b\n", []string{"A/a", "B/b"}, ""},
		{"nothing", "", nil, ""},
		{"duplicate key", "kind: A\nkind: B\n", nil, "document 1"},
		{"not an object", "kind: A\n---\n- a\n", nil, "document 2: not an object"},
		{"bad YAML", "kind: [\n", nil, "document 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := manifest.Read(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, o := range objs {
				ids = append(ids, o.ID())
				if len(o.JSON) == 0 || o.Map["kind"] != o.Kind {
					t.Errorf("%s: JSON %s, map %v", o.ID(), o.JSON, o.Map)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("objects %q, want %q", ids, tt.want)
			}
		})
	}
}
