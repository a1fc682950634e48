package check_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/check"
	"github.com/acme/shopgate/deploy/validate/internal/fixture"
	"github.com/acme/shopgate/deploy/validate/internal/spectest"
	"github.com/acme/shopgate/deploy/validate/rules"
)

var gateway string // the repository's gateway, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "check-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gateway, err = spectest.BuildGateway(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const cmGW = "ConfigMap/gateway-config-ctm798km24"

func TestRendered(t *testing.T) {
	cfg := check.Config{
		Schema:       spectest.Validator(t),
		Rules:        rules.Options{External: fixture.External},
		GatewayCheck: check.GatewayCheck(gateway, spectest.Repo()),
	}
	tests := []struct {
		name  string
		edits []fixture.Edit
		want  []string // substrings, one per problem, in order
	}{
		{name: "the dev overlay as rendered"},
		{"schema: unknown field", []fixture.Edit{{ID: "Deployment/order", Old: "strategy:", New: "stratgy:"}},
			[]string{"Deployment/order: spec.stratgy in body is a forbidden property", `Deployment/order: Deployment: strict decoding error: unknown field "spec.stratgy"`,
				"Service/order: selector app.kubernetes.io/name=order picks no workload's pods"}}, // the rules see no undecodable object
		{"schema: wrong type", []fixture.Edit{{ID: "PodDisruptionBudget/gateway", Old: "minAvailable: 1", New: "minAvailable: [1]"}},
			[]string{`PodDisruptionBudget/gateway: "spec.minAvailable" must validate at least one schema`, "PodDisruptionBudget/gateway: spec.minAvailable in body must be of type integer", "PodDisruptionBudget/gateway: PodDisruptionBudget: ",
				"Deployment/gateway: no PodDisruptionBudget selects its pods"}},
		{"rules: gateway alone", []fixture.Edit{{ID: "Deployment/gateway", Old: "replicas: 2", New: "replicas: 1"}},
			[]string{"Deployment/gateway: 1 replicas", "PodDisruptionBudget/gateway: minAvailable 1 with 1 replicas"}},
		{"gateway check: unknown key", []fixture.Edit{{ID: cmGW, Old: "shutdown_timeout: 20s", New: "shutdown_timout: 20s"}},
			[]string{cmGW + ": gateway check: exit status 1: " + "gateway: gateway.yaml: parsing config: yaml: unmarshal errors:\n  line 13: field shutdown_timout not found"}},
		{"gateway check: unknown route", []fixture.Edit{{ID: cmGW, Old: "shop.order.v1.OrderService/CreateOrder:", New: "shop.order.v1.OrderService/CreateOrdr:"}},
			[]string{cmGW + `: gateway check: exit status 1: gateway.yaml:19: routes: "shop.order.v1.OrderService/CreateOrdr" names no served service or RPC`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := check.Rendered(fixture.Dev(t, tt.edits...), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Objects != 22 || !res.GatewayChecked {
				t.Fatalf("%d objects, gateway checked %v; want 22 and true", res.Objects, res.GatewayChecked)
			}
			if len(res.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(res.Problems, "\n"), len(tt.want), tt.want)
			}
			for i, p := range res.Problems {
				if !strings.Contains(p, tt.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, p, tt.want[i])
				}
			}
		})
	}
}

func TestRenderedWithoutGatewayCheck(t *testing.T) {
	res, err := check.Rendered(fixture.Dev(t), check.Config{Schema: spectest.Validator(t), Rules: rules.Options{External: fixture.External}})
	if err != nil {
		t.Fatal(err)
	}
	if res.GatewayChecked || len(res.Problems) != 0 {
		t.Fatalf("gateway checked %v, problems %q; want false and none", res.GatewayChecked, res.Problems)
	}
}

func TestRenderedContainers(t *testing.T) {
	var seen []string
	cfg := check.Config{
		Schema: spectest.Validator(t),
		Rules:  rules.Options{External: fixture.External},
		Container: func(image string, args []string) error {
			seen = append(seen, image+" "+strings.Join(args, " "))
			if strings.HasPrefix(image, "shopgate/orderd") {
				return errors.New("refused")
			}
			return nil
		},
	}
	res, err := check.Rendered(fixture.Dev(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ContainersChecked != 5 || len(seen) != 5 {
		t.Fatalf("%d containers checked (%q), want the stack's 5 (not NATS's or Redis's)", res.ContainersChecked, seen)
	}
	if !slices.Contains(seen, "shopgate/gateway:dev -config /etc/shopgate/config/gateway.yaml") {
		t.Errorf("checked %q, want the gateway's image and arguments among them", seen)
	}
	if len(res.Problems) != 1 || res.Problems[0] != `Deployment/order: container "order": refused` {
		t.Fatalf("problems %q, want the order's refusal", res.Problems)
	}
}

// TestRenderedProduction: the production overlay as rendered passes every check, its gateway
// YAML (a Redis Cluster) included; broken, the rules of replicas speak.
func TestRenderedProduction(t *testing.T) {
	cfg := check.Config{
		Schema:       spectest.Validator(t),
		Rules:        rules.Options{External: fixture.External},
		GatewayCheck: check.GatewayCheck(gateway, spectest.Repo()),
	}
	tests := []struct {
		name  string
		edits []fixture.Edit
		want  []string // substrings, one per problem, in order
	}{
		{name: "as rendered"},
		{"the database Secret not declared", []fixture.Edit{{ID: "Deployment/payment", Old: "name: shop-database\n              optional: true", New: "name: shop-db\n              optional: true"},
			{ID: "Deployment/payment", Old: "key: url\n              name: shop-database", New: "key: url\n              name: shop-db"}},
			[]string{`Deployment/payment: container "payment" env PAYMENTD__DATABASE_URL: Secret "shop-db" is not declared external`}},
		{"a replicated service on SQLite", []fixture.Edit{{ID: "Deployment/inventory", Old: "        - name: INVENTORYD__DATABASE_URL\n", New: "        - name: INVENTORYD__DATABASE_URI\n"}},
			[]string{`Deployment/inventory: container "inventory": 2 replicas and no database URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := check.Rendered(fixture.Production(t, tt.edits...), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Objects != 19 || !res.GatewayChecked {
				t.Fatalf("%d objects, gateway checked %v; want 19 and true", res.Objects, res.GatewayChecked)
			}
			if len(res.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(res.Problems, "\n"), len(tt.want), tt.want)
			}
			for i, p := range res.Problems {
				if !strings.Contains(p, tt.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, p, tt.want[i])
				}
			}
		})
	}
}
