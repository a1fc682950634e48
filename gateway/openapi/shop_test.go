package openapi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
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

func TestShopDocumentDump(t *testing.T) {
	doc := shopDocument(t, exampleConfig(t))
	validate(t, doc.JSON)
	if p := os.Getenv("OPENAPI_DUMP"); p != "" {
		_ = os.WriteFile(p, doc.JSON, 0o644)
	}
	_ = json.Valid
	_ = slices.Contains[[]string]
	_ = strings.Contains
}
