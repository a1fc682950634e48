package server_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/server"
)

// Build a gateway from YAML and serve it; here through httptest, in production with
// srv.ListenAndServe() and srv.Shutdown(ctx).
func ExampleNew() {
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
upstreams:
  shop.inventory.v1.InventoryService: {addresses: ["127.0.0.1:9103"]}
`))
	if err != nil {
		panic(err)
	}
	srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	for _, path := range []string{"/healthz", "/v1/nowhere", "/v1/orders"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /healthz 200
	// /v1/nowhere 404
	// /v1/orders 404
}
