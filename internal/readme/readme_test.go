package readme

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// root is the repository's root, from this package's folder.
const root = "../.."

// shellBlock matches a fenced block of shell commands.
var shellBlock = regexp.MustCompile("(?ms)^```(?:sh|bash|shell|zsh)\\n(.*?)^```")

// readme returns README.md and its shell blocks, each with continuation lines joined.
func readme(t *testing.T) (string, []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range shellBlock.FindAllStringSubmatch(string(data), -1) {
		blocks = append(blocks, strings.ReplaceAll(m[1], "\\\n", " "))
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no shell block")
	}
	return string(data), blocks
}

// zshModifier is a bare variable followed by ':' (zsh: a modifier, `$ID:w`) or '[' (a subscript).
var zshModifier = regexp.MustCompile(`\$[A-Za-z_][A-Za-z0-9_]*[:\[]`)

func TestShellBlocksRunInZsh(t *testing.T) {
	t.Parallel()
	_, blocks := readme(t)
	for _, b := range blocks {
		for _, line := range strings.Split(b, "\n") {
			if m := zshModifier.FindString(line); m != "" {
				t.Errorf("%q reads differently in zsh: write ${%s}%s\n  %s", m, m[1:len(m)-1], m[len(m)-1:], line)
			}
		}
	}
}

// TestZshModifierPattern: the check finds what zsh would misread, and only that.
func TestZshModifierPattern(t *testing.T) {
	t.Parallel()
	for line, bad := range map[string]bool{
		`curl localhost:8080/v1/orders/$ID:watch`:   true,
		`curl localhost:8080/v1/orders/$ID[1]`:      true,
		`curl localhost:8080/v1/orders/${ID}:watch`: false,
		`curl "localhost:8080/v1/orders/$ID"`:       false,
		`curl localhost:8080/v1/payments/$P_ID`:     false,
	} {
		if got := zshModifier.MatchString(line); got != bad {
			t.Errorf("%s: flagged %t, want %t", line, got, bad)
		}
	}
}

// makeMention is `make TARGET` at the start of a command line or inside an inline code span.
var (
	makeCommand = regexp.MustCompile(`(?m)^\s*make ([A-Za-z0-9_-]+)`)
	makeInline  = regexp.MustCompile("`make ([A-Za-z0-9_-]+)[^`]*`")
	makeTarget  = regexp.MustCompile(`(?m)^([A-Za-z0-9_-]+):`)
)

func TestMakeTargetsExist(t *testing.T) {
	t.Parallel()
	text, blocks := readme(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range makeTarget.FindAllStringSubmatch(string(mk), -1) {
		targets[m[1]] = true
	}
	mentioned := map[string]bool{}
	for _, b := range blocks {
		for _, m := range makeCommand.FindAllStringSubmatch(b, -1) {
			mentioned[m[1]] = true
		}
	}
	for _, m := range makeInline.FindAllStringSubmatch(text, -1) {
		mentioned[m[1]] = true
	}
	if !mentioned["run"] || !mentioned["test"] {
		t.Fatalf("found %v: the README's two commands are missing, the scan is broken", mentioned)
	}
	for target := range mentioned {
		if !targets[target] {
			t.Errorf("README runs `make %s`, which the Makefile does not define", target)
		}
	}
}

// invocation is one run of a binary of cmd/ in the README.
type invocation struct {
	cmd   string   // cmd/<cmd>
	sub   []string // leading words: the subcommand
	flags []string // names of the flags passed, without the dash
	line  string
}

var (
	binary = regexp.MustCompile(`(?:go run \./cmd/|(?:^|[\s(])bin/)([a-z]+)((?:\s+[^\s;&|<>)]+)*)`)
	flag   = regexp.MustCompile(`^--?([A-Za-z][A-Za-z0-9_-]*)`) // not -1m, a value
)

// invocations finds every `go run ./cmd/X ...` and `bin/X ...` of the blocks, up to the end of
// its command (a shell operator, a comment or a closing parenthesis).
func invocations(blocks []string) []invocation {
	var out []invocation
	for _, b := range blocks {
		for _, line := range strings.Split(b, "\n") {
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			for _, m := range binary.FindAllStringSubmatch(line, -1) {
				inv := invocation{cmd: m[1], line: strings.TrimSpace(line)}
				args := strings.Fields(m[2])
				for len(args) > 0 && !strings.HasPrefix(args[0], "-") && !strings.ContainsAny(args[0], "./$") {
					inv.sub, args = append(inv.sub, args[0]), args[1:]
				}
				for _, a := range args {
					if f := flag.FindStringSubmatch(a); f != nil {
						inv.flags = append(inv.flags, f[1])
					}
				}
				out = append(out, inv)
			}
		}
	}
	return out
}

func TestInvocationParsing(t *testing.T) {
	t.Parallel()
	got := invocations([]string{`TOKEN=$(go run ./cmd/devtoken -sub alice -roles customer)   # x -nope
bin/gateway passport-keys jwks -out ./data/jwks.json ./data/passport-keys
bin/orderd -listen 127.0.0.1:9101 2> /tmp/orderd.log & ORDERD=$!
go run ./cmd/devtoken -sub alice -ttl -1m       # already expired`})
	want := []invocation{
		{cmd: "devtoken", flags: []string{"sub", "roles"}},
		{cmd: "gateway", sub: []string{"passport-keys", "jwks"}, flags: []string{"out"}},
		{cmd: "orderd", flags: []string{"listen"}},
		{cmd: "devtoken", flags: []string{"sub", "ttl"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d invocations %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].cmd != want[i].cmd || !slices.Equal(got[i].sub, want[i].sub) || !slices.Equal(got[i].flags, want[i].flags) {
			t.Errorf("invocation %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestCommandsExist builds every binary the README runs and checks that `BINARY SUB... -h`
// exits 0 and lists every flag the README passes.
func TestCommandsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	_, blocks := readme(t)
	invs := invocations(blocks)
	cmds := map[string]bool{}
	for _, inv := range invs {
		cmds[inv.cmd] = true
	}
	for _, want := range []string{"devtoken", "gateway"} {
		if !cmds[want] {
			t.Fatalf("the README runs %v and not %s: the scan is broken", cmds, want)
		}
	}
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	for c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	build := exec.Command("go", args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	help := map[string]string{} // "cmd sub..." -> its -h output
	usage := func(cmd string, sub []string) string {
		key := strings.Join(append([]string{cmd}, sub...), " ")
		if out, ok := help[key]; ok {
			return out
		}
		out, err := exec.Command(filepath.Join(bin, cmd), append(slices.Clone(sub), "-h")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s -h: %v (want exit 0)\n%s", key, err, out)
		}
		help[key] = string(out)
		return string(out)
	}
	for _, inv := range invs {
		out := usage(inv.cmd, inv.sub)
		for _, f := range inv.flags {
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(f) + `(\s|$)`).MatchString(out) {
				t.Errorf("README passes -%s to %s, which its -h does not list:\n  %s", f, strings.Join(append([]string{inv.cmd}, inv.sub...), " "), inv.line)
			}
		}
		if len(inv.sub) > 0 && !strings.Contains(usage(inv.cmd, nil), inv.cmd+" "+inv.sub[0]) {
			t.Errorf("%s -h does not list the subcommand %q the README runs:\n  %s", inv.cmd, inv.sub[0], inv.line)
		}
	}
}
