package apicheck

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ExtractRef writes the files under dirs (repository-relative folders, such as "proto") as
// they are at ref into dest, with `git archive`, and returns which of dirs ref has. repo is the
// repository's work tree.
func ExtractRef(ctx context.Context, repo, ref, dest string, dirs ...string) ([]string, error) {
	var present []string
	for _, d := range dirs {
		// ls-tree names the folder only when ref has it.
		out, err := git(ctx, repo, "ls-tree", "-d", "--name-only", ref, "--", d)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(out) != "" {
			present = append(present, d)
		}
	}
	if len(present) == 0 {
		return nil, nil
	}
	cmd := exec.CommandContext(ctx, "git", append([]string{"archive", "--format=tar", ref, "--"}, present...)...)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git archive %s: %v: %s", ref, err, strings.TrimSpace(stderr.String()))
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading git archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			return nil, fmt.Errorf("git archive: unexpected path %q", h.Name)
		}
		p := filepath.Join(dest, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return present, nil
}

// Trailers returns the API trailers (TrailerBreaking, TrailerAuthLoosened) of the commits in
// base..HEAD, by key: each trailer line's value, split at commas and trimmed. Keys are matched
// case-insensitively, as git does.
func Trailers(ctx context.Context, repo, base string) (map[string][]string, error) {
	out, err := git(ctx, repo, "log", "--format=%(trailers:only,unfold)", base+"..HEAD")
	if err != nil {
		return nil, err
	}
	acks := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, key := range []string{TrailerBreaking, TrailerAuthLoosened} {
			if strings.EqualFold(strings.TrimSpace(k), key) {
				for _, item := range strings.Split(v, ",") {
					if item = strings.TrimSpace(item); item != "" {
						acks[key] = append(acks[key], item)
					}
				}
			}
		}
	}
	return acks, nil
}

func git(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
