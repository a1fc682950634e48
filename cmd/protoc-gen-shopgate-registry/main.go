// Command protoc-gen-shopgate-registry is a protoc plugin (run by `buf generate`, see
// buf.gen.yaml) that writes the gateway's service registry: one Go file listing every service
// of the input protos that has at least one google.api.http rule, with its descriptor and its
// grpc-gateway registration. A service without HTTP rules (shop.events.v1) is left out.
//
// It needs every file in one request (buf's `strategy: all`), since it writes one file for
// all of them. Options (buf's `opt`):
//
//	import_path=<Go import path>   the generated package's import path; required
//	                               (github.com/acme/shopgate/gen/registry)
//
// The file is named registry.go, in the plugin's `out` folder; its package name is the last
// element of import_path.
package main

import (
	"flag"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"
)

func main() {
	var flags flag.FlagSet
	importPath := flags.String("import_path", "", "Go import path of the generated package")
	protogen.Options{ParamFunc: flags.Set}.Run(func(gen *protogen.Plugin) error {
		gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL | pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
		gen.SupportedEditionsMinimum, gen.SupportedEditionsMaximum = minEdition, maxEdition
		return generate(gen, *importPath)
	})
}
