// Package images ties the manifests to the images: each of the stack's containers names an
// image the Dockerfile builds (a target of the image's name), and the binary of that target
// accepts the container's arguments.
package images

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ArgsTimeout bounds one run of a binary with -h.
const ArgsTimeout = 10 * time.Second

// Name is an image reference's last path element without tag or digest:
// "registry.example.com/shopgate/orderd:0.1.0" -> "orderd".
func Name(image string) string {
	image, _, _ = strings.Cut(image, "@")
	last := image[strings.LastIndex(image, "/")+1:]
	last, _, _ = strings.Cut(last, ":")
	return last
}

// Checker checks containers against a Dockerfile's targets and a folder of the binaries they
// build (named as the targets).
type Checker struct {
	Targets  []string // the Dockerfile's stage names
	Binaries string   // folder of the built binaries
}

// Check returns nil if image is a target of the Dockerfile whose binary takes args: it runs
// `<binary> args... -h`, which a binary of this repository answers with its usage and status 0
// once every flag before -h parsed, and with status 2 or 1 on an unknown flag. Nothing serves.
func (c Checker) Check(image string, args []string) error {
	name := Name(image)
	if !slices.Contains(c.Targets, name) {
		return fmt.Errorf("image %s: the Dockerfile has no target %q (%s)", image, name, strings.Join(c.Targets, ", "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), ArgsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Binaries, name), append(slices.Clone(args), "-h")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("%s does not take its arguments %q: %v: %s", name, args, err, first)
	}
	return nil
}
