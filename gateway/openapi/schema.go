package openapi

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// schemas collects the component schemas of the messages and enums the document names.
type schemas struct {
	comments Comments
	out      map[string]*schema
}

// ref returns a reference to the component of message or enum d, adding it (and what it names)
// when it is new.
func ref(name protoreflect.FullName) *schema {
	return &schema{Ref: "#/components/schemas/" + string(name)}
}

// message returns the schema of a message type used as a value: a well-known type's JSON form
// inline, any other message a $ref to its component.
func (s *schemas) message(md protoreflect.MessageDescriptor) *schema {
	if wk := wellKnown(md); wk != nil {
		return wk
	}
	name := md.FullName()
	if _, ok := s.out[string(name)]; !ok {
		obj := &schema{Type: "object", Description: s.comments.of(md), Properties: map[string]*schema{}}
		s.out[string(name)] = obj // before the fields: a recursive message finds itself
		fields := md.Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			obj.Properties[f.JSONName()] = s.field(f)
		}
	}
	return ref(name)
}

// messageExcept returns md's schema inline without the top-level fields named in skip (the path
// parameters of a body "*").
func (s *schemas) messageExcept(md protoreflect.MessageDescriptor, skip map[string]bool) *schema {
	if len(skip) == 0 {
		return s.message(md)
	}
	obj := &schema{Type: "object", Description: s.comments.of(md), Properties: map[string]*schema{}}
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !skip[string(f.Name())] {
			obj.Properties[f.JSONName()] = s.field(f)
		}
	}
	return obj
}

// field returns the schema of field f with its comment.
func (s *schemas) field(f protoreflect.FieldDescriptor) *schema {
	var sc *schema
	switch {
	case f.IsMap():
		sc = &schema{Type: "object", AdditionalProperties: s.singular(f.MapValue())}
	case f.IsList():
		sc = &schema{Type: "array", Items: s.singular(f)}
	default:
		sc = s.singular(f)
	}
	return describe(sc, s.comments.of(f))
}

// describe adds a description to sc; a $ref gets it through an allOf of one.
func describe(sc *schema, description string) *schema {
	if description == "" {
		return sc
	}
	if sc.Ref != "" {
		return &schema{AllOf: []*schema{sc}, Description: description}
	}
	c := *sc
	c.Description = description
	return &c
}

// singular returns the schema of one value of f, in protojson's form.
func (s *schemas) singular(f protoreflect.FieldDescriptor) *schema {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return &schema{Type: "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return &schema{Type: "integer", Format: "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return &schema{Type: "integer", Format: "int64"} // 0 to 2^32-1
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return &schema{Type: "string", Format: "int64"} // protojson: a decimal string
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return &schema{Type: "string", Format: "uint64"}
	case protoreflect.FloatKind:
		return &schema{Type: "number", Format: "float"}
	case protoreflect.DoubleKind:
		return &schema{Type: "number", Format: "double"}
	case protoreflect.StringKind:
		return &schema{Type: "string"}
	case protoreflect.BytesKind:
		return &schema{Type: "string", Format: "byte"} // base64
	case protoreflect.EnumKind:
		return s.enum(f.Enum())
	default: // message, group
		return s.message(f.Message())
	}
}

// enum returns a $ref to enum ed's component: a string, one of its value names.
func (s *schemas) enum(ed protoreflect.EnumDescriptor) *schema {
	if ed.FullName() == "google.protobuf.NullValue" {
		return &schema{Nullable: true, Description: "null"}
	}
	name := string(ed.FullName())
	if _, ok := s.out[name]; !ok {
		values := ed.Values()
		sc := &schema{Type: "string", Description: s.comments.of(ed)}
		for i := range values.Len() {
			sc.Enum = append(sc.Enum, string(values.Get(i).Name()))
		}
		s.out[name] = sc
	}
	return ref(ed.FullName())
}

// wellKnown returns the inline schema of a google.protobuf well-known type in protojson's form,
// nil for any other message.
func wellKnown(md protoreflect.MessageDescriptor) *schema {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return &schema{Type: "string", Format: "date-time", Description: "RFC 3339, UTC (\"2026-12-04T21:50:29Z\")."}
	case "google.protobuf.Duration":
		return &schema{Type: "string", Description: "Seconds with up to nine fractional digits and an \"s\" suffix (\"1.5s\")."}
	case "google.protobuf.FieldMask":
		return &schema{Type: "string", Description: "Comma-separated lowerCamelCase field paths."}
	case "google.protobuf.Struct":
		return &schema{Type: "object", AdditionalProperties: true}
	case "google.protobuf.Value":
		return &schema{Description: "Any JSON value."}
	case "google.protobuf.ListValue":
		return &schema{Type: "array", Items: &schema{Description: "Any JSON value."}}
	case "google.protobuf.Empty":
		return &schema{Type: "object"}
	case "google.protobuf.Any":
		return &schema{Type: "object", Properties: map[string]*schema{"@type": {Type: "string", Description: "The type URL of the value."}},
			AdditionalProperties: true}
	case "google.protobuf.BoolValue":
		return &schema{Type: "boolean", Nullable: true}
	case "google.protobuf.StringValue":
		return &schema{Type: "string", Nullable: true}
	case "google.protobuf.BytesValue":
		return &schema{Type: "string", Format: "byte", Nullable: true}
	case "google.protobuf.Int32Value":
		return &schema{Type: "integer", Format: "int32", Nullable: true}
	case "google.protobuf.UInt32Value":
		return &schema{Type: "integer", Format: "int64", Nullable: true}
	case "google.protobuf.Int64Value":
		return &schema{Type: "string", Format: "int64", Nullable: true}
	case "google.protobuf.UInt64Value":
		return &schema{Type: "string", Format: "uint64", Nullable: true}
	case "google.protobuf.FloatValue":
		return &schema{Type: "number", Format: "float", Nullable: true}
	case "google.protobuf.DoubleValue":
		return &schema{Type: "number", Format: "double", Nullable: true}
	}
	return nil
}

// statusName is the component of every error body.
const statusName = "google.rpc.Status"

func statusSchema() *schema {
	return &schema{Type: "object", Description: "The error body of every refusal: a google.rpc.Status.",
		Properties: map[string]*schema{
			"code":    {Type: "integer", Format: "int32", Description: "The gRPC status code (google.rpc.Code)."},
			"message": {Type: "string", Description: "A developer-facing message, in English."},
			"details": {Type: "array", Description: "Typed details (google.protobuf.Any), such as google.rpc.ErrorInfo.",
				Items: &schema{Type: "object", Properties: map[string]*schema{"@type": {Type: "string"}}, AdditionalProperties: true}},
		}}
}
