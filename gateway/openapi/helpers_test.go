package openapi_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/openapi"
	"github.com/acme/shopgate/gateway/routes"
	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/durationpb"  // registers google/protobuf/duration.proto
	_ "google.golang.org/protobuf/types/known/structpb"    // registers google/protobuf/struct.proto
	_ "google.golang.org/protobuf/types/known/timestamppb" // registers google/protobuf/timestamp.proto
	_ "google.golang.org/protobuf/types/known/wrapperspb"  // registers google/protobuf/wrappers.proto
)

// testFile compiles test/v1/things.proto: the service test.v1.Things, whose RPCs cover
// grpc-gateway's parameter rules, and the message test.v1.Thing, whose fields cover protojson's
// forms (see the table of each test). Its source info carries comments for ParseComments.
func testFile(t testing.TB) protoreflect.FileDescriptor {
	t.Helper()
	if fd, err := protoregistry.GlobalFiles.FindFileByPath("test/v1/things.proto"); err == nil {
		return fd
	}
	fd, err := protodesc.NewFile(testFileProto(), protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("compiling the test proto: %v", err)
	}
	if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
		t.Fatal(err)
	}
	return fd
}

func testFileProto() *descriptorpb.FileDescriptorProto {
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string, repeated bool) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(),
			JsonName: proto.String(jsonName(name)), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		if repeated {
			f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		}
		return f
	}
	const (
		tString = descriptorpb.FieldDescriptorProto_TYPE_STRING
		tInt64  = descriptorpb.FieldDescriptorProto_TYPE_INT64
		tUint32 = descriptorpb.FieldDescriptorProto_TYPE_UINT32
		tBool   = descriptorpb.FieldDescriptorProto_TYPE_BOOL
		tBytes  = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		tDouble = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
		tEnum   = descriptorpb.FieldDescriptorProto_TYPE_ENUM
		tMsg    = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	method := func(name, in, out string, rule *annotations.HttpRule, streaming bool) *descriptorpb.MethodDescriptorProto {
		opts := &descriptorpb.MethodOptions{}
		proto.SetExtension(opts, annotations.E_Http, rule)
		m := &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: proto.String(in), OutputType: proto.String(out), Options: opts}
		if streaming {
			m.ServerStreaming = proto.Bool(true)
		}
		return m
	}
	svcOpts := &descriptorpb.ServiceOptions{}
	proto.SetExtension(svcOpts, gatewayv1.E_ServicePolicy, &gatewayv1.Policy{Timeout: "2s"})
	return &descriptorpb.FileDescriptorProto{
		Name:    proto.String("test/v1/things.proto"),
		Package: proto.String("test.v1"),
		Syntax:  proto.String("proto3"),
		Dependency: []string{"google/api/annotations.proto", "gateway/v1/policy.proto", "google/protobuf/timestamp.proto",
			"google/protobuf/duration.proto", "google/protobuf/struct.proto", "google/protobuf/wrappers.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("Kind"), Value: []*descriptorpb.EnumValueDescriptorProto{
			{Name: proto.String("KIND_UNSPECIFIED"), Number: proto.Int32(0)}, {Name: proto.String("KIND_BIG"), Number: proto.Int32(1)}}}},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Thing"), Field: []*descriptorpb.FieldDescriptorProto{
				field("id", 1, tString, "", false),
				field("big_number", 2, tInt64, "", false),
				field("small", 3, tUint32, "", false),
				field("kind", 4, tEnum, ".test.v1.Kind", false),
				field("create_time", 5, tMsg, ".google.protobuf.Timestamp", false),
				field("wait", 6, tMsg, ".google.protobuf.Duration", false),
				field("meta", 7, tMsg, ".google.protobuf.Struct", false),
				field("parent", 8, tMsg, ".test.v1.Thing", false),
				field("tags", 9, tString, "", true),
				field("counts", 10, tMsg, ".test.v1.Thing.CountsEntry", true),
				field("filter", 11, tMsg, ".test.v1.Filter", false),
				field("blob", 12, tBytes, "", false),
				field("children", 13, tMsg, ".test.v1.Thing", true),
				field("any", 14, tMsg, ".google.protobuf.Value", false),
				field("note", 15, tMsg, ".google.protobuf.StringValue", false),
				field("ratio", 16, tDouble, "", false),
			}, NestedType: []*descriptorpb.DescriptorProto{{
				Name:    proto.String("CountsEntry"),
				Field:   []*descriptorpb.FieldDescriptorProto{field("key", 1, tString, "", false), field("value", 2, tInt64, "", false)},
				Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			}}},
			{Name: proto.String("Filter"), Field: []*descriptorpb.FieldDescriptorProto{
				field("status", 1, tString, "", false), field("deep", 2, tMsg, ".test.v1.Filter", false), field("on", 3, tBool, "", false)}},
			{Name: proto.String("UpdateRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, tString, "", false), field("thing", 2, tMsg, ".test.v1.Thing", false), field("validate_only", 3, tBool, "", false)}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    proto.String("Things"),
			Options: svcOpts,
			Method: []*descriptorpb.MethodDescriptorProto{
				method("Get", ".test.v1.Thing", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/things/{id}"}}, false),
				method("Create", ".test.v1.Thing", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/things"}, Body: "*"}, false),
				method("Update", ".test.v1.UpdateRequest", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Patch{Patch: "/v1/{name=shelves/*/things/*}"}, Body: "thing"}, false),
				method("Put", ".test.v1.UpdateRequest", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Put{Put: "/v1/things/{thing.id}"}, Body: "*"}, false),
				method("Do", ".test.v1.Thing", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/things/{id}:do"}, Body: "*",
					AdditionalBindings: []*annotations.HttpRule{{Pattern: &annotations.HttpRule_Get{Get: "/v1/things/{id}:do"}}}}, false),
				method("Watch", ".test.v1.Thing", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/things/{id}:watch"}}, true),
				method("Tags", ".test.v1.Thing", ".test.v1.Thing", &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/things/{id}/tags"}, ResponseBody: "tags"}, false),
			},
		}},
		SourceCodeInfo: &descriptorpb.SourceCodeInfo{Location: []*descriptorpb.SourceCodeInfo_Location{
			{Path: []int32{6, 0}, Span: []int32{0, 0, 1}, LeadingComments: proto.String(" Things keeps things.\n Second line.\n")},
			{Path: []int32{6, 0, 2, 0}, Span: []int32{0, 0, 1}, LeadingComments: proto.String(" Get returns one thing. Public.\n")},
			{Path: []int32{4, 0}, Span: []int32{0, 0, 1}, LeadingComments: proto.String(" Thing is a thing.\n")},
			{Path: []int32{4, 0, 2, 1}, Span: []int32{0, 0, 1}, LeadingComments: proto.String(" A big number.\n")},
			{Path: []int32{4, 0, 2, 3}, Span: []int32{0, 0, 1}, LeadingComments: proto.String(" What kind.\n")},
		}},
	}
}

// jsonName is protoc's JSON name of a field: lowerCamelCase.
func jsonName(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// testComments are the comments of testFile, read back as ParseComments reads a FileDescriptorSet.
func testComments(t testing.TB) openapi.Comments {
	t.Helper()
	testFile(t)
	set, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{testFileProto()}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := openapi.ParseComments(set)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// thingsDocument builds the document of test.v1.Things under the YAML config yaml, decoded.
func thingsDocument(t testing.TB, yaml string, opts openapi.Options) map[string]any {
	t.Helper()
	sd := testFile(t).Services().Get(0)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	table, err := routes.Build(cfg, []protoreflect.ServiceDescriptor{sd})
	if err != nil {
		t.Fatal(err)
	}
	opts.Comments = testComments(t)
	doc, err := openapi.Build(table, []protoreflect.ServiceDescriptor{sd}, opts)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, doc.JSON)
	var m map[string]any
	if err := json.Unmarshal(doc.JSON, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at returns the value at a JSON pointer ("/paths/~1v1~1things/get"), nil when absent.
func at(doc any, pointer string) any {
	v := doc
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i := -1
			if n, err := strconv.Atoi(tok); err == nil && n < len(x) {
				i = n
			}
			for j := range x {
				if m, ok := x[j].(map[string]any); ok && m["name"] == tok { // a parameter by name
					i = j
				}
			}
			if i < 0 {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// js decodes a JSON literal of a test table.
func js(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON in the test table: %s: %v", s, err)
	}
	return v
}
