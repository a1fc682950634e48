package auth_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// The stage behind the router: the route is in the request's context, the verified identity
// reaches the next handler. The identity provider's public key is a PEM file; authtest stands
// in for the provider that signs the tokens.
func Example() {
	keys, _ := authtest.NewKeys()
	dir, _ := os.MkdirTemp("", "keys")
	defer os.RemoveAll(dir)
	pemPath := filepath.Join(dir, "idp.pub.pem")
	_ = os.WriteFile(pemPath, authtest.PublicPEM(keys.Ed.Public()), 0o600)

	a, err := auth.New(auth.Config{
		Sources: []auth.Source{{
			Name:      "idp",
			Issuer:    "https://idp.example.com/",
			Audiences: []string{"shop-api"},
			KeyFiles:  []auth.KeyFile{{Path: pemPath, KID: "idp-1"}},
		}},
		APIKeys: []auth.APIKey{{SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Subject: "svc-batch"}}, // sha256("test")
	}, auth.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()

	admin := &policy.Route{Policy: policy.Policy{Auth: policy.AuthRequired, Roles: []string{"admin"}}}
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := identity.FromContext(r.Context())
		fmt.Println("served", id.Subject, id.Roles, id.Method)
	}))
	send := func(header, value string) {
		r := httptest.NewRequest(http.MethodPut, "/v1/inventory/items/sku-1", nil)
		r = r.WithContext(policy.NewContext(r.Context(), admin))
		if header != "" {
			r.Header.Set(header, value)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
	mint := func(sub, role string) string {
		now := time.Now()
		return authtest.Sign("EdDSA", keys.Ed, map[string]any{"kid": "idp-1"}, map[string]any{
			"iss": "https://idp.example.com/", "aud": "shop-api", "sub": sub, "roles": []string{role},
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
	}
	adminToken := mint("root", "admin")
	customerToken := mint("alice", "customer")

	send("Authorization", "Bearer "+adminToken)
	send("Authorization", "Bearer "+customerToken)
	send("", "")
	send("Authorization", "Bearer "+customerToken[:len(customerToken)-4])
	send("X-API-Key", "test")
	// Output:
	// served idp|root [admin] jwt
	// 403 Bearer realm="shop", error="insufficient_scope"
	// 401 Bearer realm="shop"
	// 401 Bearer realm="shop", error="invalid_token", error_description="invalid token"
	// 403 Bearer realm="shop", error="insufficient_scope"
}
