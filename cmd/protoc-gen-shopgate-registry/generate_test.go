package main

import (
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const testImportPath = "example.com/m/gen/registry"

// method is an RPC of a synthetic file; get is its google.api.http GET path, "" for none.
type method struct{ name, get string }

// file is a synthetic proto file with services of methods.
func file(name, pkg, goPackage string, services map[string][]method) *descriptorpb.FileDescriptorProto {
	f := &descriptorpb.FileDescriptorProto{
		Name: proto.String(name), Package: proto.String(pkg), Syntax: proto.String("proto3"),
		Options:     &descriptorpb.FileOptions{GoPackage: proto.String(goPackage)},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
	}
	for _, svc := range slices.Sorted(maps.Keys(services)) {
		sd := &descriptorpb.ServiceDescriptorProto{Name: proto.String(svc)}
		for _, m := range services[svc] {
			md := &descriptorpb.MethodDescriptorProto{Name: proto.String(m.name), InputType: proto.String("." + pkg + ".M"), OutputType: proto.String("." + pkg + ".M")}
			if m.get != "" {
				md.Options = &descriptorpb.MethodOptions{}
				proto.SetExtension(md.Options, annotations.E_Http, &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: m.get}})
			}
			sd.Method = append(sd.Method, md)
		}
		f.Service = append(f.Service, sd)
	}
	return f
}

// run runs the plugin on files (the first generate of them are to be generated) and returns
// the generated file's content or the plugin's error.
func run(t *testing.T, param string, n int, files ...*descriptorpb.FileDescriptorProto) (string, error) {
	t.Helper()
	req := &pluginpb.CodeGeneratorRequest{Parameter: proto.String(param), ProtoFile: files}
	for _, f := range files[:n] {
		req.FileToGenerate = append(req.FileToGenerate, f.GetName())
	}
	var importPath string
	gen, err := protogen.Options{ParamFunc: func(name, value string) error {
		if name == "import_path" {
			importPath = value
		}
		return nil
	}}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := generate(gen, importPath); err != nil {
		return "", err
	}
	resp := gen.Response()
	if resp.Error != nil {
		t.Fatalf("plugin error: %s", resp.GetError())
	}
	if len(resp.File) != 1 || resp.File[0].GetName() != FileName {
		t.Fatalf("generated %d files, want one %s", len(resp.File), FileName)
	}
	return resp.File[0].GetContent(), nil
}

func TestGenerate(t *testing.T) {
	shop := file("shop/a/v1/a.proto", "shop.a.v1", "example.com/m/gen/shop/a/v1;av1", map[string][]method{
		"Routed":   {{"Get", "/v1/a/{name}"}, {"Internal", ""}}, // one rule is enough
		"Unrouted": {{"Ping", ""}},                              // no rule: left out
	})
	events := file("shop/events/v1/events.proto", "shop.events.v1", "example.com/m/gen/shop/events/v1;eventsv1", nil)
	sameName1 := file("x/v1/x.proto", "x.v1", "example.com/m/gen/x/v1;v1", map[string][]method{"X": {{"Get", "/v1/x"}}})
	sameName2 := file("y/v1/y.proto", "y.v1", "example.com/m/gen/y/v1;v1", map[string][]method{"Y": {{"Get", "/v1/y"}}})
	dependency := file("dep/v1/dep.proto", "dep.v1", "example.com/m/gen/dep/v1;depv1", map[string][]method{"Dep": {{"Get", "/v1/dep"}}})

	tests := []struct {
		name     string
		param    string
		generate int // the first files are generated, the others are dependencies
		files    []*descriptorpb.FileDescriptorProto
		want     []string
		wantNot  []string
		wantErr  string
	}{
		{
			name: "routed services only", param: "import_path=" + testImportPath, generate: 2, files: []*descriptorpb.FileDescriptorProto{shop, events},
			want: []string{
				"// source: shop/a/v1/a.proto\n", "package registry\n", `av1 "example.com/m/gen/shop/a/v1"`,
				`Desc: av1.File_shop_a_v1_a_proto.Services().ByName("Routed")`,
				"return av1.RegisterRoutedHandlerClient(ctx, mux, av1.NewRoutedClient(cc))",
			},
			wantNot: []string{"Unrouted", "events"},
		},
		{
			name: "a dependency's services are not listed", param: "import_path=" + testImportPath, generate: 1, files: []*descriptorpb.FileDescriptorProto{shop, dependency},
			want:    []string{`ByName("Routed")`},
			wantNot: []string{"Dep", "dep.proto"},
		},
		{
			name: "no routed service: an empty list", param: "import_path=" + testImportPath, generate: 1, files: []*descriptorpb.FileDescriptorProto{events},
			want:    []string{"return []Service{}\n", "package registry\n"},
			wantNot: []string{"// source:", "events"},
		},
		{
			name: "packages of the same name get apart aliases", param: "import_path=" + testImportPath, generate: 2, files: []*descriptorpb.FileDescriptorProto{sameName1, sameName2},
			want: []string{`v1 "example.com/m/gen/x/v1"`, `v11 "example.com/m/gen/y/v1"`, "v1.RegisterXHandlerClient", "v11.RegisterYHandlerClient"},
		},
		{
			name: "the package is named after the import path", param: "import_path=example.com/m/gen/services", generate: 1, files: []*descriptorpb.FileDescriptorProto{shop},
			want: []string{"package services\n"},
		},
		{name: "no import path", generate: 1, files: []*descriptorpb.FileDescriptorProto{shop}, wantErr: "import_path option is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := run(t, tt.param, tt.generate, tt.files...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, "// Code generated by protoc-gen-shopgate-registry. DO NOT EDIT.\n") {
				t.Errorf("no generated-code header:\n%s", got)
			}
			f, err := parser.ParseFile(token.NewFileSet(), FileName, got, parser.ImportsOnly)
			if err != nil {
				t.Fatalf("not Go: %v\n%s", err, got)
			}
			seen := map[string]bool{}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if seen[p] {
					t.Errorf("%s imported twice", p)
				}
				seen[p] = true
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("has %q:\n%s", w, got)
				}
			}
		})
	}
}
