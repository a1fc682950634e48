package apicheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Against compiles the protos of head and, from the git repository at repo, the same folders
// as they are at ref (Source.Dir must be inside repo; an import folder inside repo is read at
// ref too, or from the work tree when ref lacks it; one outside is read as it is), and returns Diff(base, head) and the acknowledgements of
// the commits in ref..HEAD (Trailers). A ref with no Source.Dir has nothing to compare: no
// changes.
func Against(ctx context.Context, repo, ref string, head *Schema, src Source) ([]Change, map[string][]string, error) {
	tmp, err := os.MkdirTemp("", "apicheck-base-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	protoDir, err := relTo(repo, src.Dir)
	if err != nil {
		return nil, nil, err
	}
	// The import folders inside the repository are read at ref too; others (none in the
	// repository's own use) as they are.
	rel := []string{protoDir}
	var outside []string
	for _, d := range src.ImportPaths {
		if r, err := relTo(repo, d); err == nil {
			rel = append(rel, r)
		} else {
			outside = append(outside, d)
		}
	}
	present, err := ExtractRef(ctx, repo, ref, tmp, rel...)
	if err != nil {
		return nil, nil, err
	}
	has := map[string]bool{}
	for _, p := range present {
		has[p] = true
	}
	if !has[rel[0]] {
		return nil, nil, nil
	}
	baseSrc := Source{Dir: filepath.Join(tmp, rel[0]), Name: ref + ":" + filepath.ToSlash(rel[0])}
	for _, d := range rel[1:] {
		if has[d] {
			baseSrc.ImportPaths = append(baseSrc.ImportPaths, filepath.Join(tmp, d))
		} else {
			baseSrc.ImportPaths = append(baseSrc.ImportPaths, filepath.Join(repo, d))
		}
	}
	baseSrc.ImportPaths = append(baseSrc.ImportPaths, outside...)
	base, err := Compile(ctx, baseSrc)
	if err != nil {
		return nil, nil, fmt.Errorf("the protos at %s: %w", ref, err)
	}
	acks, err := Trailers(ctx, repo, ref)
	if err != nil {
		return nil, nil, err
	}
	return Diff(base, head), acks, nil
}

// relTo returns dir relative to repo (dir may be relative to the working directory).
func relTo(repo, dir string) (string, error) {
	ar, err := filepath.Abs(repo)
	if err != nil {
		return "", err
	}
	ad, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(ar, ad)
	if err != nil || !filepath.IsLocal(r) {
		return "", fmt.Errorf("%s is not inside the repository %s", dir, repo)
	}
	return filepath.ToSlash(r), nil
}
