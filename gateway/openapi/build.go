package openapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Version is the OpenAPI version of the document.
const Version = "3.0.3"

// The names of the security schemes in components.securitySchemes.
const (
	// SchemeBearer is a JWT in "Authorization: Bearer <token>"; always present.
	SchemeBearer = "bearer"
	// SchemeAPIKey is a key in the X-API-Key header (auth.HeaderAPIKey); present when
	// Options.APIKeys is set.
	SchemeAPIKey = "apiKey"
)

// Options are what the descriptors and the route table do not say. The zero value is usable.
type Options struct {
	// Title of the document. Default: the service's name when there is one, else "API".
	Title string
	// Version of the API. Default: the distinct version components of the services' packages
	// ("v1" for shop.order.v1), joined by ", "; "unversioned" when none has one.
	Version string
	// Description of the document (CommonMark). Default: each service with the first sentence
	// of its comment, and how to authenticate.
	Description string
	// Comments of the protos (ParseComments): the services', methods', messages' and fields'
	// descriptions. Default: none.
	Comments Comments
	// APIKeys documents the API-key scheme (a key in auth.HeaderAPIKey) next to the bearer
	// scheme: set it when the gateway has API keys configured. Default: false.
	APIKeys bool
}

// Document is a built OpenAPI document, immutable.
type Document struct {
	// JSON is the document, indented.
	JSON []byte
	// ETag is a strong entity tag of JSON (quoted).
	ETag string
}

// Build returns the document of the routes of table that belong to services: the services the
// gateway serves (those with an upstream). Routes of other services are left out. It fails when
// a route names an RPC or a binding that services do not declare: table was not built from them.
func Build(table *routes.Table, services []protoreflect.ServiceDescriptor, opts Options) (*Document, error) {
	b := &builder{opts: opts, sch: &schemas{comments: opts.Comments, out: map[string]*schema{}},
		services: map[string]protoreflect.ServiceDescriptor{}}
	b.sch.out[statusName] = statusSchema()
	doc := &document{OpenAPI: Version, Paths: map[string]*pathItem{}}
	for _, sd := range services {
		b.services[string(sd.FullName())] = sd
	}
	b.tagNames(services)
	for _, sd := range services {
		doc.Tags = append(doc.Tags, tag{Name: b.tags[sd.FullName()], Description: describeService(sd, opts.Comments)})
	}
	binding := map[string]int{} // the index of each RPC's next binding, for operation ids
	for _, r := range table.Routes() {
		sd, ok := b.services[r.Service]
		if !ok {
			continue // not served
		}
		n := binding[r.RPC]
		binding[r.RPC]++
		path, op, err := b.operation(sd, r, n)
		if err != nil {
			return nil, err
		}
		path = b.canonicalPath(path, op)
		item := doc.Paths[path]
		if item == nil {
			item = &pathItem{}
			doc.Paths[path] = item
		}
		if err := item.set(r.HTTPMethod, op); err != nil {
			return nil, fmt.Errorf("openapi: %s %s: %w", r.HTTPMethod, r.Path, err)
		}
	}
	doc.Info = b.info(services)
	doc.Components = components{Schemas: b.sch.out, Responses: errorResponses(), SecuritySchemes: b.securitySchemes()}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return &Document{JSON: js, ETag: etag(js)}, nil
}

// etag is a strong entity tag of b: its SHA-256, base64url, quoted.
func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

type builder struct {
	opts     Options
	sch      *schemas
	services map[string]protoreflect.ServiceDescriptor
	tags     map[protoreflect.FullName]string
	shapes   map[string]string // a path with its variables unnamed -> the first path of that shape
}

// canonicalPath returns path, or the path of the same shape seen first: OpenAPI forbids two
// paths that differ only in their variables' names ("/items/{sku}", "/items/{item.sku}"). op's
// path parameters are renamed to match, their field named in their description.
func (b *builder) canonicalPath(path string, op *operation) string {
	shape := variableRE.ReplaceAllString(path, "{}")
	if b.shapes == nil {
		b.shapes = map[string]string{}
	}
	first, ok := b.shapes[shape]
	if !ok || first == path {
		b.shapes[shape] = path
		return path
	}
	names := variableRE.FindAllStringSubmatch(first, -1)
	i := 0
	for _, p := range op.Parameters {
		if p.In != "path" {
			continue
		}
		p.Description = strings.TrimSpace("Field `" + p.Name + "`. " + p.Description)
		p.Name = names[i][1]
		i++
	}
	return first
}

// variableRE matches an OpenAPI path variable.
var variableRE = regexp.MustCompile(`\{([^}]*)\}`)

// tagNames names each service's tag by its short name, or its full name when two share one.
func (b *builder) tagNames(services []protoreflect.ServiceDescriptor) {
	count := map[protoreflect.Name]int{}
	for _, sd := range services {
		count[sd.Name()]++
	}
	b.tags = map[protoreflect.FullName]string{}
	for _, sd := range services {
		b.tags[sd.FullName()] = string(sd.Name())
		if count[sd.Name()] > 1 {
			b.tags[sd.FullName()] = string(sd.FullName())
		}
	}
}

func describeService(sd protoreflect.ServiceDescriptor, c Comments) string {
	d := "`" + string(sd.FullName()) + "`"
	if s := c.of(sd); s != "" {
		d += ": " + s
	}
	return d
}

func (b *builder) info(services []protoreflect.ServiceDescriptor) info {
	in := info{Title: b.opts.Title, Version: b.opts.Version, Description: b.opts.Description}
	if in.Title == "" {
		in.Title = "API"
		if len(services) == 1 {
			in.Title = string(services[0].Name())
		}
	}
	if in.Version == "" {
		var vs []string
		for _, sd := range services {
			last := sd.ParentFile().Package().Name()
			if isVersion(string(last)) && !slices.Contains(vs, string(last)) {
				vs = append(vs, string(last))
			}
		}
		in.Version = strings.Join(vs, ", ")
		if in.Version == "" {
			in.Version = "unversioned"
		}
	}
	if in.Description == "" {
		var d strings.Builder
		d.WriteString("The HTTP/JSON API of these gRPC services, as the gateway serves it:\n\n")
		for _, sd := range services {
			fmt.Fprintf(&d, "- **%s** (`%s`)", b.tags[sd.FullName()], sd.FullName())
			if s := summary(b.opts.Comments.of(sd)); s != "" {
				d.WriteString(": " + s)
			}
			d.WriteString("\n")
		}
		d.WriteString("\nA route that takes a credential accepts a JWT as `Authorization: Bearer <token>`")
		if b.opts.APIKeys {
			d.WriteString(" or an API key in `" + auth.HeaderAPIKey + "`")
		}
		d.WriteString(". Every error is a `google.rpc.Status` in JSON. The `x-shopgate-*` extensions of each " +
			"operation give its policy: auth, roles, rate limit, timeout.\n")
		in.Description = d.String()
	}
	return in
}

// isVersion reports whether a package component is a version: v1, v2beta1, v1alpha.
func isVersion(s string) bool {
	return len(s) >= 2 && s[0] == 'v' && s[1] >= '0' && s[1] <= '9'
}

func (b *builder) securitySchemes() map[string]*securityScheme {
	ss := map[string]*securityScheme{SchemeBearer: {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
		Description: "A JWT from a trusted issuer, in `Authorization: Bearer <token>`."}}
	if b.opts.APIKeys {
		ss[SchemeAPIKey] = &securityScheme{Type: "apiKey", In: "header", Name: auth.HeaderAPIKey,
			Description: "A server-to-server key."}
	}
	return ss
}

func (p *pathItem) set(method string, op *operation) error {
	var slot **operation
	switch method {
	case http.MethodGet:
		slot = &p.Get
	case http.MethodPut:
		slot = &p.Put
	case http.MethodPost:
		slot = &p.Post
	case http.MethodDelete:
		slot = &p.Delete
	case http.MethodPatch:
		slot = &p.Patch
	case http.MethodHead:
		slot = &p.Head
	default:
		return fmt.Errorf("method %s has no place in OpenAPI 3.0", method)
	}
	if *slot != nil {
		return fmt.Errorf("two routes on one path (%s and %s)", (*slot).XRPC, op.XRPC)
	}
	*slot = op
	return nil
}

// rule returns the binding of md's google.api.http rule that r was built from.
func rule(md protoreflect.MethodDescriptor, r *policy.Route) *annotations.HttpRule {
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	top, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
	for _, h := range append([]*annotations.HttpRule{top}, top.GetAdditionalBindings()...) {
		var m, p string
		switch pat := h.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			m, p = http.MethodGet, pat.Get
		case *annotations.HttpRule_Put:
			m, p = http.MethodPut, pat.Put
		case *annotations.HttpRule_Post:
			m, p = http.MethodPost, pat.Post
		case *annotations.HttpRule_Delete:
			m, p = http.MethodDelete, pat.Delete
		case *annotations.HttpRule_Patch:
			m, p = http.MethodPatch, pat.Patch
		case *annotations.HttpRule_Custom:
			m, p = strings.ToUpper(pat.Custom.GetKind()), pat.Custom.GetPath()
		}
		if m == r.HTTPMethod && p == r.Path {
			return h
		}
	}
	return nil
}
