package shopapi_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/internal/shopapi"
)

// TestServices checks the generated list: sorted, each service once, each with a binding and a
// registration that registers its handlers.
func TestServices(t *testing.T) {
	svcs := shopapi.Services()
	names := shopapi.Names()
	if len(svcs) == 0 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("services %v: want at least one, sorted, each once", names)
	}
	withBinding := map[string]bool{}
	for _, b := range shopapi.Bindings() {
		withBinding[b.RPC[1:strings.LastIndex(b.RPC, "/")]] = true // /pkg.Service/Method
	}
	cc, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, s := range svcs {
		name := string(s.Desc.FullName())
		t.Run(name, func(t *testing.T) {
			if !withBinding[name] {
				t.Errorf("%s is listed without a google.api.http binding", name)
			}
			if err := s.Register(context.Background(), runtime.NewServeMux(), cc); err != nil {
				t.Errorf("Register: %v", err)
			}
		})
	}
}

// TestBindingsAreTheRoutes checks Bindings, the tests' oracle, against the route table.
func TestBindingsAreTheRoutes(t *testing.T) {
	cfg, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	table, err := routes.Build(cfg, shopapi.Descriptors())
	if err != nil {
		t.Fatal(err)
	}
	var got, want []shopapi.Binding
	for _, r := range table.Routes() {
		got = append(got, shopapi.Binding{RPC: r.RPC, Method: r.HTTPMethod, Path: r.Path})
	}
	want = shopapi.Bindings()
	order := func(a, b shopapi.Binding) int {
		return cmp.Or(strings.Compare(a.RPC, b.RPC), strings.Compare(a.Method, b.Method), strings.Compare(a.Path, b.Path))
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if !slices.Equal(got, want) {
		t.Errorf("routes %v\nbindings %v", got, want)
	}
}
