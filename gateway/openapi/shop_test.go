package openapi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/openapi"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// exampleConfig is gateway/config/example.yaml, the configuration the docs show.
func exampleConfig(t testing.TB) *config.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	cfg, err := config.Load(filepath.Join(filepath.Dir(file), "..", "config", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// shopDocument builds the document of the shop's services under cfg, as the gateway does: the
// route table of every service, the document of those with an upstream.
func shopDocument(t testing.TB, cfg *config.Config) *openapi.Document {
	t.Helper()
	table, err := routes.Build(cfg, shopapi.Descriptors())
	if err != nil {
		t.Fatal(err)
	}
	comments, err := openapi.ParseComments(shopapi.SourceInfo)
	if err != nil {
		t.Fatal(err)
	}
	var served []protoreflect.ServiceDescriptor
	for _, sd := range shopapi.Descriptors() {
		if _, ok := cfg.Upstreams[string(sd.FullName())]; ok {
			served = append(served, sd)
		}
	}
	doc, err := openapi.Build(table, served, openapi.Options{Title: "Shop API", Comments: comments, APIKeys: len(cfg.Auth.APIKeys) > 0})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// validate loads js with kin-openapi and validates it.
func validate(t testing.TB, js []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(js)
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// TestShopDocument builds the shop's document from gateway/config/example.yaml and validates it
// with kin-openapi; every served route is in it with its resolved policy, and nothing else.
func TestShopDocument(t *testing.T) {
	cfg := exampleConfig(t)
	doc := shopDocument(t, cfg)
	spec := validate(t, doc.JSON)
	if p := os.Getenv("OPENAPI_DUMP"); p != "" { // to look at it: OPENAPI_DUMP=/tmp/openapi.json
		if err := os.WriteFile(p, doc.JSON, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	table, err := routes.Build(cfg, shopapi.Descriptors())
	if err != nil {
		t.Fatal(err)
	}
	var decoded map[string]any
	if err := json.Unmarshal(doc.JSON, &decoded); err != nil {
		t.Fatal(err)
	}
	operations := 0
	for _, item := range spec.Paths.Map() {
		operations += len(item.Operations())
	}
	if n := len(table.Routes()); operations != n {
		t.Errorf("%d operations, want one per route of the table: %d", operations, n)
	}
	for _, r := range table.Routes() {
		t.Run(r.HTTPMethod+" "+r.Path, func(t *testing.T) {
			var op map[string]any
			for path, item := range decoded["paths"].(map[string]any) {
				o, _ := item.(map[string]any)[strings.ToLower(r.HTTPMethod)].(map[string]any)
				if o != nil && o["x-shopgate-rpc"] == r.RPC && strings.Count(path, "/") == strings.Count(stripVars(r.Path), "/") {
					op = o
				}
			}
			if op == nil {
				t.Fatalf("no operation for %s %s (%s)", r.HTTPMethod, r.Path, r.RPC)
			}
			if got := op["x-shopgate-auth"]; got != r.Policy.Auth.String() {
				t.Errorf("x-shopgate-auth %v, want %s", got, r.Policy.Auth)
			}
			var roles []string
			if rs, ok := op["x-shopgate-roles"].([]any); ok {
				for _, role := range rs {
					roles = append(roles, role.(string))
				}
			}
			if !slices.Equal(roles, r.Policy.Roles) {
				t.Errorf("x-shopgate-roles %q, want %q", roles, r.Policy.Roles)
			}
			rl, _ := op["x-shopgate-rate-limit"].(map[string]any)
			if rl["requests"] != float64(r.Policy.RateLimit.Requests) || rl["burst"] != float64(r.Policy.RateLimit.Burst) {
				t.Errorf("x-shopgate-rate-limit %v, want %+v", rl, r.Policy.RateLimit)
			}
			if _, secured := op["security"]; secured != (r.Policy.Auth.String() != "none") {
				t.Errorf("security %v for auth %s", op["security"], r.Policy.Auth)
			}
			if op["summary"] == "" || op["description"] == "" {
				t.Errorf("no summary or description from the proto's comments: %v", op)
			}
		})
	}
	// The YAML override of example.yaml is what the document says.
	create := at(decoded, "/paths/~1v1~1orders/post")
	if got, want := at(create, "/x-shopgate-rate-limit"), js(t, `{"requests":20,"per":"60s","burst":5}`); !reflect.DeepEqual(got, want) {
		t.Errorf("CreateOrder's rate limit %v, want example.yaml's %v", got, want)
	}
	if got := at(decoded, "/components/securitySchemes/apiKey/name"); got != "X-API-Key" {
		t.Errorf("example.yaml has API keys: the API-key scheme is %v", got)
	}
	t.Logf("the shop's document: %d bytes, %d paths, %d operations, %d schemas", len(doc.JSON), spec.Paths.Len(), operations, len(spec.Components.Schemas))
}

// stripVars removes a template's variables, whose patterns may hold slashes.
func stripVars(tpl string) string {
	for {
		i, j := strings.IndexByte(tpl, '{'), strings.IndexByte(tpl, '}')
		if i < 0 || j < i {
			return tpl
		}
		tpl = tpl[:i] + "x" + tpl[j+1:]
	}
}

// TestOnlyServedServices: a service without an upstream is not in the document.
func TestOnlyServedServices(t *testing.T) {
	cfg, err := config.Parse([]byte("upstreams: {shop.inventory.v1.InventoryService: {addresses: [127.0.0.1:1]}}"))
	if err != nil {
		t.Fatal(err)
	}
	doc := shopDocument(t, cfg)
	spec := validate(t, doc.JSON)
	var paths []string
	for p := range spec.Paths.Map() {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if want := []string{"/v1/inventory/items", "/v1/inventory/items/{sku}"}; !slices.Equal(paths, want) {
		t.Errorf("paths %q, want only the inventory's %q", paths, want)
	}
	if spec.Components.SecuritySchemes["apiKey"] != nil {
		t.Error("no API keys configured, yet an API-key scheme")
	}
	if len(spec.Tags) != 1 || spec.Info.Title != "Shop API" {
		t.Errorf("tags %v, title %q", spec.Tags, spec.Info.Title)
	}
}

// BenchmarkBuildShop measures what each configuration snapshot adds: building the shop's
// document from example.yaml's route table.
func BenchmarkBuildShop(b *testing.B) {
	cfg := exampleConfig(b)
	table, err := routes.Build(cfg, shopapi.Descriptors())
	if err != nil {
		b.Fatal(err)
	}
	opts, err := shopapi.OpenAPI()
	if err != nil {
		b.Fatal(err)
	}
	opts.APIKeys = true
	var size int
	for b.Loop() {
		doc, err := openapi.Build(table, shopapi.Descriptors(), opts)
		if err != nil {
			b.Fatal(err)
		}
		size = len(doc.JSON)
	}
	b.ReportMetric(float64(size), "bytes/doc")
}
