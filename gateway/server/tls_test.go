package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/shopapi"
	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
)

// httpsClient returns a client trusting roots, speaking HTTP/2 (by ALPN) or HTTP/1.1 only, with
// cert as its client certificate when given; its connections close when the test ends.
func httpsClient(t *testing.T, roots *x509.CertPool, h2 bool, cert *tlsfilestest.Pair) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		c, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func pool(cas ...*tlsfilestest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// startHTTPSGateway starts a gateway with server.tls on files (and extra YAML) and returns it
// with its https:// URL.
func startHTTPSGateway(t *testing.T, addr string, tlsYAML, extra string) *gateway {
	t.Helper()
	g := startGateway(t, baseYAML(addr, "server:\n  tls: "+tlsYAML+"\n"+extra), Options{})
	g.url = strings.Replace(g.url, "http://", "https://", 1)
	return g
}

// The listener serves HTTPS, HTTP/2 by ALPN (unary calls and :watch streams) and HTTP/1.1,
// with the answers net/http gives itself still the gateway's; a rotated certificate is what the
// next connection gets, a half-written one changes nothing.
func TestHTTPSListenerServesBothProtocolsAndRotates(t *testing.T) {
	be := startBackend(t)
	holdWatches(be)
	caA, caB := tlsfilestest.NewCA(t, "A"), tlsfilestest.NewCA(t, "B")
	a, b := caA.Issue(t, "gateway A"), caB.Issue(t, "gateway B")
	f := tlsfilestest.WriteFiles(t, t.TempDir(), caA, a)
	gw := startHTTPSGateway(t, be.addr, fmt.Sprintf("{cert_file: %q, key_file: %q}", f.Cert, f.Key), "")
	roots := pool(caA, caB)

	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{{"HTTP/2", true, "HTTP/2.0"}, {"HTTP/1.1", false, "HTTP/1.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			client := httpsClient(t, roots, tc.h2, nil)
			resp, err := client.Get(gw.url + "/v1/inventory/items/sku-1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Proto != tc.proto || !strings.Contains(string(body), "widget") {
				t.Fatalf("GET item: %d %s %s, want 200 over %s", resp.StatusCode, resp.Proto, body, tc.proto)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			stop := openWatch(t, client, gw.url, customerKey) // a server stream, read to its first message
			stop()
		})
	}

	// The edge's connection wrappers see the plaintext: net/http's own answers and the
	// ambiguous framing check work over TLS as without it.
	for _, tc := range []struct {
		name, request string
		want          int
	}{
		{"headers over the limit", "GET /v1/inventory/items/sku-1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"Content-Length and Transfer-Encoding", "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.url, "https://"), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.request); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%d %v, want %d as JSON with a request id", resp.StatusCode, resp.Header, tc.want)
			}
		})
	}

	t.Run("rotation", func(t *testing.T) {
		steps := []struct {
			name   string
			change func()
			want   *x509.Certificate
		}{
			{"first", func() {}, a.Leaf},
			{"replaced by B", func() { tlsfilestest.Write(t, f.Cert, b.CertPEM); tlsfilestest.Write(t, f.Key, b.KeyPEM) }, b.Leaf},
			{"half-written keeps B", func() {
				if err := os.WriteFile(f.Cert, a.CertPEM[:100], 0o600); err != nil {
					t.Fatal(err)
				}
			}, b.Leaf},
		}
		for _, s := range steps {
			s.change()
			client := httpsClient(t, roots, true, nil) // a new connection
			resp, err := client.Get(gw.url + PathHealthz)
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			resp.Body.Close()
			if got := resp.TLS.PeerCertificates[0]; got.SerialNumber.Cmp(s.want.SerialNumber) != 0 {
				t.Errorf("%s: the gateway presented %s, want %s", s.name, got.Subject.CommonName, s.want.Subject.CommonName)
			}
		}
	})
}

// With client_ca_file, a client without a certificate of that CA is refused at the handshake.
func TestHTTPSListenerRequiresClientCertificates(t *testing.T) {
	be := startBackend(t)
	serverCA, clientCA, otherCA := tlsfilestest.NewCA(t, "server"), tlsfilestest.NewCA(t, "clients"), tlsfilestest.NewCA(t, "other")
	f := tlsfilestest.WriteFiles(t, t.TempDir(), clientCA, serverCA.Issue(t, "gateway"))
	gw := startHTTPSGateway(t, be.addr, fmt.Sprintf("{cert_file: %q, key_file: %q, client_ca_file: %q}", f.Cert, f.Key, f.CA), "")
	good, bad := clientCA.Issue(t, "app"), otherCA.Issue(t, "stranger")
	for _, tc := range []struct {
		name string
		cert *tlsfilestest.Pair
		ok   bool
	}{{"no certificate", nil, false}, {"another CA's", &bad, false}, {"the client CA's", &good, true}} {
		for _, h2 := range []bool{true, false} {
			resp, err := httpsClient(t, pool(serverCA), h2, tc.cert).Get(gw.url + "/v1/inventory/items/sku-1")
			if err == nil {
				resp.Body.Close()
			}
			if ok := err == nil && resp.StatusCode == http.StatusOK; ok != tc.ok {
				t.Errorf("%s (h2 %v): err %v, want served %v", tc.name, h2, err, tc.ok)
			}
		}
	}
}

// peerNames records the client certificate each upstream call arrived with.
type peerNames struct {
	mu   sync.Mutex
	last string
}

func (p *peerNames) behave(ctx context.Context, _ string) error {
	if pr, ok := peer.FromContext(ctx); ok {
		if st, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(st.State.PeerCertificates) > 0 {
			p.mu.Lock()
			p.last = st.State.PeerCertificates[0].Subject.CommonName
			p.mu.Unlock()
		}
	}
	return nil
}

func (p *peerNames) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// The upstreams' TLS: a service that requires client certificates refuses a gateway without
// one (503) and serves one with one; the gateway's rotated client certificate is what its next
// connection presents (the backend closes connections after 300ms, so the gateway reconnects).
func TestUpstreamMutualTLS(t *testing.T) {
	serviceCA, gatewayCA := tlsfilestest.NewCA(t, "services"), tlsfilestest.NewCA(t, "gateways")
	sf := tlsfilestest.WriteFiles(t, t.TempDir(), gatewayCA, serviceCA.Issue(t, "inventory"))
	srvTLS, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: sf.Cert, KeyFile: sf.Key, ClientCAFile: sf.CA}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	be := startBackend(t, grpc.Creds(srvTLS.Credentials()),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 300 * time.Millisecond, MaxConnectionAgeGrace: time.Second}))
	peers := &peerNames{}
	be.setBehave(peers.behave)

	dir := t.TempDir()
	gf := tlsfilestest.WriteFiles(t, dir, serviceCA, gatewayCA.Issue(t, "gateway A"))
	upstreams := func(addr, tlsYAML string) string {
		var b strings.Builder
		b.WriteString("listen: 127.0.0.1:0\nupstreams:\n")
		for _, name := range shopapi.Names() {
			fmt.Fprintf(&b, "  %s: {addresses: [%q], tls: %s}\n", name, addr, tlsYAML)
		}
		return b.String()
	}
	_, port, _ := net.SplitHostPort(be.addr)
	mtls := fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q}", gf.CA, gf.Cert, gf.Key)
	for _, tc := range []struct {
		name    string
		addr    string
		tlsYAML string
		want    int
	}{
		{"plaintext", be.addr, "{}", http.StatusServiceUnavailable},
		{"TLS without a client certificate", be.addr, fmt.Sprintf("{ca_file: %q}", gf.CA), http.StatusServiceUnavailable},
		{"the wrong server name", be.addr, fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q, server_name: other.example}", gf.CA, gf.Cert, gf.Key), http.StatusServiceUnavailable},
		{"a DNS name, verified as that name", "dns:///localhost:" + port, mtls, http.StatusOK},
		{"mutual TLS, then a rotation", be.addr, mtls, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := startGateway(t, upstreams(tc.addr, tc.tlsYAML), Options{})
			r := do(t, nil, http.MethodGet, gw.url+"/v1/inventory/items/sku-1", nil, nil)
			if r.status != tc.want {
				t.Fatalf("GET item: %d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want != http.StatusOK || !strings.Contains(tc.name, "rotation") {
				return
			}
			if got := peers.get(); got != "gateway A" {
				t.Fatalf("the service saw %q, want gateway A", got)
			}
			tlsfilestest.WriteFiles(t, dir, serviceCA, gatewayCA.Issue(t, "gateway B"))
			deadline := time.Now().Add(10 * time.Second)
			for peers.get() != "gateway B" {
				if time.Now().After(deadline) {
					t.Fatalf("after the rotation the service still sees %q", peers.get())
				}
				do(t, nil, http.MethodGet, gw.url+"/v1/inventory/items/sku-1", nil, nil)
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// Over HTTP/2 the edge's framing scanner reads binary frames: a body whose bytes look like a
// request head with both Content-Length and Transfer-Encoding must not refuse the requests
// after it on the same connection.
func TestHTTP2BodiesAreNotRequestHeads(t *testing.T) {
	be := startBackend(t)
	ca := tlsfilestest.NewCA(t, "ca")
	f := tlsfilestest.WriteFiles(t, t.TempDir(), ca, ca.Issue(t, "gateway"))
	gw := startHTTPSGateway(t, be.addr, fmt.Sprintf("{cert_file: %q, key_file: %q}", f.Cert, f.Key), "")
	client := httpsClient(t, pool(ca), true, nil)
	body := "x\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	for i := range 4 {
		r := do(t, client, http.MethodPost, gw.url+"/v1/orders", strings.NewReader(body), customer())
		if r.status != http.StatusBadRequest { // not JSON
			t.Fatalf("POST %d: %d %s, want 400 for a body that is not JSON", i, r.status, r.body)
		}
		if r := do(t, client, http.MethodGet, gw.url+"/v1/inventory/items/sku-1", nil, nil); r.status != http.StatusOK {
			t.Fatalf("GET %d after it on the same connection: %d %s, want 200", i, r.status, r.body)
		}
	}
}
