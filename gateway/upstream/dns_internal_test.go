package upstream

import (
	"testing"

	"google.golang.org/grpc/resolver"
)

// fakeCC records the states a resolver sends.
type fakeCC struct {
	resolver.ClientConn
	states []resolver.State
}

func (f *fakeCC) UpdateState(s resolver.State) error { f.states = append(f.states, s); return nil }

// TestPoolRidesEveryDNSUpdate: each state the DNS resolver sends (the first resolution and
// every re-resolution) reaches the balancer with the connection's pool, and with endpoints.
func TestPoolRidesEveryDNSUpdate(t *testing.T) {
	p := newPool(Ejection{}, nil)
	fc := &fakeCC{}
	cc := &poolCC{ClientConn: fc, pool: p}
	for _, addrs := range [][]string{{"10.0.0.1:1"}, {"10.0.0.1:1", "10.0.0.2:1"}} {
		var s resolver.State
		for _, a := range addrs {
			s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
		}
		if err := cc.UpdateState(s); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range fc.states {
		if got, _ := s.Attributes.Value(poolKey{}).(*pool); got != p {
			t.Fatalf("update %d: pool %v, want the connection's", i, got)
		}
		if len(s.Endpoints) != len(s.Addresses) {
			t.Fatalf("update %d: %d endpoints for %d addresses", i, len(s.Endpoints), len(s.Addresses))
		}
	}
	if name, ok := dnsTarget([]string{"dns:///svc.ns:9103"}); !ok || name != "svc.ns:9103" {
		t.Fatalf("dnsTarget = %q, %v", name, ok)
	}
	if _, ok := dnsTarget([]string{"10.0.0.1:1"}); ok {
		t.Fatal("a static address taken for a dns target")
	}
}
