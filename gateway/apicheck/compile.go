// Package apicheck checks the HTTP API that the protos declare, from their sources: routes that
// can match the same request, policies that contradict themselves or name what does not exist
// (Check), and the changes a client would feel between two versions of the protos (Diff). Every
// problem names the proto file and line it comes from.
//
// The protos are compiled in process with github.com/bufbuild/protocompile (the compiler buf
// itself is built on), with source info, so that a problem can name a line; a buf image would
// need the buf binary and a temporary file per check, and the base version of Diff would need
// a second buf invocation over a git checkout. Both sides of a diff are compiled the same way.
package apicheck

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// The options read from the compiled protos: their Go types must be registered so that
	// the options are decoded into them.
	_ "github.com/acme/shopgate/gen/gateway/v1"
	_ "google.golang.org/genproto/googleapis/api/annotations"
)

// Source says which protos to compile.
type Source struct {
	// Dir holds the protos checked (every *.proto under it), such as "proto". Required.
	Dir string
	// Name is what positions show for Dir ("origin/main:proto" for a base read from git).
	// Default: Dir.
	Name string
	// ImportPaths are further folders imports resolve in (besides Dir and the protobuf
	// well-known types), such as "third_party/googleapis" and, for protos outside the repo,
	// the repo's "proto". Default: none.
	ImportPaths []string
}

// Schema is a compiled set of protos.
type Schema struct {
	// Files are the checked files (those under Source.Dir), by path.
	Files []protoreflect.FileDescriptor
	// Registry resolves every compiled file, imports included.
	Registry *protoregistry.Files
	// dir prefixes the positions (Source.Dir, as given).
	dir string
}

// Compile compiles every proto under src.Dir with source info. The custom options
// (google.api.http, gateway.v1.*) of the result decode into their generated Go types.
func Compile(ctx context.Context, src Source) (*Schema, error) {
	var names []string
	err := filepath.WalkDir(src.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".proto") {
			rel, err := filepath.Rel(src.Dir, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing protos: %w", err)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no .proto files", src.Dir)
	}
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			ImportPaths: append([]string{src.Dir}, src.ImportPaths...),
			Accessor:    func(path string) (io.ReadCloser, error) { return os.Open(path) },
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("compiling protos: %w", err)
	}
	// Re-read the files through their descriptor protos with the registered Go types, so that
	// proto.GetExtension sees the options whatever form the compiler left them in.
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range compiled {
		add(f)
	}
	raw, err := proto.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding descriptors: %w", err)
	}
	decoded := &descriptorpb.FileDescriptorSet{}
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(raw, decoded); err != nil {
		return nil, fmt.Errorf("decoding descriptors: %w", err)
	}
	reg, err := protodesc.NewFiles(decoded)
	if err != nil {
		return nil, fmt.Errorf("linking descriptors: %w", err)
	}
	s := &Schema{Registry: reg, dir: src.Dir}
	if src.Name != "" {
		s.dir = src.Name
	}
	for _, n := range names {
		fd, err := reg.FindFileByPath(n)
		if err != nil {
			return nil, err
		}
		s.Files = append(s.Files, fd)
	}
	return s, nil
}

// Services returns the services of the checked files, in file order.
func (s *Schema) Services() []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	for _, f := range s.Files {
		svcs := f.Services()
		for i := range svcs.Len() {
			out = append(out, svcs.Get(i))
		}
	}
	return out
}

// Pos returns "file:line" of d in its source (line 1-based; the file under Source.Dir), or the
// file alone without source info.
func (s *Schema) Pos(d protoreflect.Descriptor) string {
	return s.posOf(d.ParentFile(), d.ParentFile().SourceLocations().ByDescriptor(d))
}

// optionPos returns the position of the option field number ext of d's options (such as the
// gateway.v1.policy option of a method), falling back to d's own position.
func (s *Schema) optionPos(d protoreflect.Descriptor, optionsField int32, ext protoreflect.FieldNumber) string {
	f := d.ParentFile()
	loc := f.SourceLocations().ByDescriptor(d)
	if loc.Path != nil {
		path := append(append(protoreflect.SourcePath{}, loc.Path...), optionsField, int32(ext))
		if l := f.SourceLocations().ByPath(path); l.Path != nil {
			return s.posOf(f, l)
		}
	}
	return s.posOf(f, loc)
}

func (s *Schema) posOf(f protoreflect.FileDescriptor, loc protoreflect.SourceLocation) string {
	name := path.Join(filepath.ToSlash(s.dir), f.Path())
	if loc.Path == nil {
		return name
	}
	return fmt.Sprintf("%s:%d", name, loc.StartLine+1)
}
