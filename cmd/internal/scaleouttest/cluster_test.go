package scaleouttest

// A scale-out stack: replicas of each service on one backend, and gateways in front of them.

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gwpassport "github.com/acme/shopgate/gateway/passport"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// services are the service binaries by their short name, in start order (orderd prices
// orders through inventoryd).
var services = []string{"inventory", "payment", "order"}

// cluster is replicas of every service and gateways in front of them.
type cluster struct {
	t        testing.TB
	replicas map[string][]*proc // by short service name
	gateways []*gateway
	key      *devkey.Key // the gateways trust its tokens
	inv      inventoryv1.InventoryServiceClient
	pay      paymentv1.PaymentServiceClient
	ord      orderv1.OrderServiceClient
}

// clusterOptions shape a cluster.
type clusterOptions struct {
	replicas, gateways int
	// gatewayYAML is added to each gateway's file (routes:, defaults:, ...).
	gatewayYAML string
	// serviceFlags are added to every replica's flags, lastReplicaFlags to the last replica's
	// of each service.
	serviceFlags, lastReplicaFlags []string
}

// newCluster starts the replicas of every service on be, then the gateways, each gateway
// balancing over every replica. The gateways' rate limit fails closed, with a timeout of 1s
// (not 100ms) for a machine this test loads: a limit that fell back to each gateway's own
// memory would pass off as shared. The gateways share one development key (a token works on
// either) and one passport key, which the services trust beside passporttest's (with which
// the test calls them directly). Everything is killed at the end; on failure the logs of the
// processes are printed.
func newCluster(t testing.TB, be *backend, opts clusterOptions) *cluster {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	key, err := devkey.LoadOrCreate(filepath.Join(dir, "devkeys"))
	if err != nil {
		t.Fatal(err)
	}
	passportDir := filepath.Join(dir, "passport")
	jwks := writeJWKS(t, dir, passportDir)
	c := &cluster{t: t, replicas: map[string][]*proc{}, key: key}
	t.Cleanup(func() {
		for _, g := range c.gateways {
			g.close()
		}
		for i := len(services) - 1; i >= 0; i-- {
			for _, p := range c.replicas[services[i]] {
				p.kill()
			}
		}
		if t.Failed() {
			for _, svc := range services {
				for _, p := range c.replicas[svc] {
					t.Logf("--- %s log (last lines, successful calls left out):\n%s", p.name, proctest.Tail(proctest.WithoutPolls(p.logs()), 40))
				}
			}
			for _, g := range c.gateways {
				t.Logf("--- %s log (last lines, successful calls left out):\n%s", g.p.name, proctest.Tail(proctest.WithoutPolls(g.p.logs()), 30))
			}
		}
	})
	addrsOf := map[string][]string{}
	for _, svc := range services {
		for i := range opts.replicas {
			addrsOf[svc] = append(addrsOf[svc], proctest.FreeAddr(t))
			_ = i
		}
	}
	for _, svc := range services {
		for i, addr := range addrsOf[svc] {
			args := append([]string{"-listen", addr, "-passport-jwks", jwks, "-log-level", "warn"}, be.serviceFlags(svc)...)
			args = append(args, opts.serviceFlags...)
			if i == opts.replicas-1 {
				args = append(args, opts.lastReplicaFlags...)
			}
			if svc == "order" {
				args = append(args, "-inventory-addr", strings.Join(addrsOf["inventory"], ","))
			}
			p := &proc{t: t, name: fmt.Sprintf("%sd-%d", svc, i+1), bin: filepath.Join(bin, svc+"d"), addr: addr, args: args,
				ready: grpcServing(addr, 60*time.Second), log: filepath.Join(dir, fmt.Sprintf("%sd-%d.log", svc, i+1))}
			c.replicas[svc] = append(c.replicas[svc], p)
			p.start()
		}
	}
	conn := func(svc string) *grpc.ClientConn {
		// The last replica, which the test never kills.
		conn, err := grpc.NewClient("passthrough:///"+addrsOf[svc][len(addrsOf[svc])-1], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	c.inv = inventoryv1.NewInventoryServiceClient(conn("inventory"))
	c.pay = paymentv1.NewPaymentServiceClient(conn("payment"))
	c.ord = orderv1.NewOrderServiceClient(conn("order"))

	list := func(a []string) string { return `["` + strings.Join(a, `", "`) + `"]` }
	src := key.AuthSource()
	for i := range opts.gateways {
		addr := proctest.FreeAddr(t)
		cfg := fmt.Sprintf(`listen: %s
upstreams:
  %s: {addresses: %s}
  %s: {addresses: %s}
  %s: {addresses: %s}
server: {shutdown_timeout: 2s}
auth:
  sources:
    - {name: %s, issuer: %q, audiences: [%q], algorithms: [EdDSA], jwks_file: %q, plain_subjects: true}
passport: {key_dir: %q}
rate_limiting: {backend: redis, redis: {%s, timeout: 1s, failure_mode: closed}}
abuse: {max_failures: 10000, redis: {%s, timeout: 1s}}
`, addr,
			orderv1.OrderService_ServiceDesc.ServiceName, list(addrsOf["order"]),
			paymentv1.PaymentService_ServiceDesc.ServiceName, list(addrsOf["payment"]),
			inventoryv1.InventoryService_ServiceDesc.ServiceName, list(addrsOf["inventory"]),
			src.Name, src.Issuer, src.Audiences[0], src.JWKSFile, passportDir, be.rateLimitRedis, be.abuseRedis) + opts.gatewayYAML
		path := filepath.Join(dir, fmt.Sprintf("gateway-%d.yaml", i+1))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGateway(t, filepath.Join(bin, "gateway"), addr, fmt.Sprintf("gateway-%d", i+1), filepath.Join(dir, fmt.Sprintf("gateway-%d.log", i+1)), "-config", path)
		c.gateways = append(c.gateways, g)
		g.p.start()
	}
	return c
}

// writeJWKS makes the gateways' passport key in passportDir and writes the JWKS file the
// services trust: that key and passporttest's.
func writeJWKS(t testing.TB, dir, passportDir string) string {
	t.Helper()
	type jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	var merged, gw jwks
	if err := json.Unmarshal(passporttest.JWKS(passporttest.Key), &merged); err != nil {
		t.Fatal(err)
	}
	if err := gwpassport.EnsureKey(passportDir); err != nil {
		t.Fatal(err)
	}
	b, err := gwpassport.JWKSOf(passportDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &gw); err != nil {
		t.Fatal(err)
	}
	merged.Keys = append(merged.Keys, gw.Keys...)
	if b, err = json.Marshal(merged); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "passport-jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// admin is a context carrying an admin's passport, for calling the services directly.
func admin(ctx context.Context) context.Context {
	md := passporttest.Metadata(passport.Caller{Subject: "ops", Roles: []string{"admin"}, Auth: "jwt"})
	return metadata.NewOutgoingContext(ctx, md)
}

// token mints a token of the gateways' development key.
func (c *cluster) token(sub string, roles ...string) string {
	c.t.Helper()
	tok, err := c.key.Mint(devkey.Claims{Subject: sub, Roles: roles, TTL: time.Hour})
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// gateway is cmd/gateway (or cmd/shop) as a process, with an HTTP client for it.
type gateway struct {
	p    *proc
	base string
	tr   *http.Transport
	hc   *http.Client
}

// newGateway describes a gateway process serving HTTP on addr; p.start runs it and waits
// until /readyz answers 200.
func newGateway(t testing.TB, bin, addr, name, log string, args ...string) *gateway {
	g := &gateway{base: "http://" + addr}
	g.tr = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, ResponseHeaderTimeout: 10 * time.Second}
	g.hc = &http.Client{Transport: g.tr}
	g.p = &proc{t: t, name: name, bin: bin, addr: addr, args: args, log: log, ready: func(exited <-chan struct{}) error {
		deadline := time.Now().Add(60 * time.Second)
		for {
			select {
			case <-exited:
				return fmt.Errorf("exited at start")
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			status, _, err := g.do(ctx, "GET", "/readyz", "", nil, "")
			cancel()
			if err == nil && status == http.StatusOK {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not ready after 60s: %d %v", status, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}}
	return g
}

func (g *gateway) close() {
	g.tr.CloseIdleConnections()
	g.p.kill()
}

// do sends one request and reads the whole answer. It never fails the test (goroutines call
// it): an error is a transport failure or ctx's end.
func (g *gateway) do(ctx context.Context, method, path, token string, hdr map[string]string, body string) (int, []byte, error) {
	return proctest.Do(ctx, g.hc, g.base, method, path, token, hdr, body)
}
