package buildinfo_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPrintIfRequested(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"-version"}, true},
		{[]string{"--version"}, true},
		{[]string{"-config", "x.yaml", "-version=true"}, true},
		{[]string{"-version=false"}, false},
		{[]string{"routes", "-version"}, true},
		{[]string{"-config", "version"}, false},
		{[]string{"--", "-version"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		got := buildinfo.PrintIfRequested(tt.args, &out, "orderd")
		if got != tt.want || (out.Len() > 0) != tt.want {
			t.Errorf("%q: %v, printed %q", tt.args, got, out.String())
		}
		if tt.want && !strings.HasPrefix(out.String(), "orderd "+buildinfo.Read().Version+" (commit ") {
			t.Errorf("%q printed %q", tt.args, out.String())
		}
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildinfo.Collector())
	in := buildinfo.Read()
	want := `# HELP build_info Always 1; the labels say what the binary was built from.
# TYPE build_info gauge
build_info{commit="` + in.Commit + `",go_version="` + in.GoVersion + `",modified="` + map[bool]string{true: "true", false: "false"}[in.Modified] + `",version="` + in.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "build_info"); err != nil {
		t.Error(err)
	}
}

// TestBinaryVersion builds every binary the way `make build` does, with the version and commit
// given at link time, and checks what -version prints and that -h lists the flag.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	commit := strings.TrimSpace(string(head))
	binaries := []string{"gateway", "orderd", "paymentd", "inventoryd", "storefrontd", "shop", "devtoken"}
	dir := t.TempDir()
	args := []string{"build", "-ldflags", "-X github.com/acme/shopgate/internal/buildinfo.version=v9.8.7-test " +
		"-X github.com/acme/shopgate/internal/buildinfo.commit=" + commit, "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "../../cmd/"+b)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, b := range binaries {
		t.Run(b, func(t *testing.T) {
			out, err := exec.Command(filepath.Join(dir, b), "-version").Output()
			if err != nil {
				t.Fatalf("%s -version: %v", b, err)
			}
			if want := b + " v9.8.7-test (commit " + commit; !strings.HasPrefix(string(out), want) {
				t.Errorf("%s -version printed %q, want it to start with %q", b, out, want)
			}
			help, _ := exec.Command(filepath.Join(dir, b), "-h").CombinedOutput()
			if !strings.Contains(string(help), "-version") {
				t.Errorf("%s -h does not list -version:\n%s", b, help)
			}
		})
	}
}
