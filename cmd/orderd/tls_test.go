package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// inventoryTLSAt serves a seeded inventory service that requires client certificates of the
// CA in files.CA, with files' certificate.
func inventoryTLSAt(t *testing.T, files tlsfilestest.Files) string {
	t.Helper()
	store, err := inventory.OpenSQLite(filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := inventory.SeedDemo(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	st, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), Extra: []grpc.ServerOption{grpc.Creds(st.Credentials())}})
	inventory.New(store, inventory.Options{}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); _ = store.Close() })
	return lis.Addr().String()
}

// orderd serving gRPC over mutual TLS (-tls-*) and calling the inventory over mutual TLS
// (-upstream-tls-*): callers without the right certificate are refused, an order is priced
// through the inventory, and after orderd's certificate files are replaced the next connection
// gets the new certificate, with no restart.
func TestRunWithMutualTLS(t *testing.T) {
	mesh, stranger := tlsfilestest.NewCA(t, "mesh"), tlsfilestest.NewCA(t, "stranger")
	inv := inventoryTLSAt(t, tlsfilestest.WriteFiles(t, t.TempDir(), mesh, mesh.Issue(t, "inventory")))
	srvDir, cliDir := t.TempDir(), t.TempDir()
	a, b := mesh.Issue(t, "orderd A"), mesh.Issue(t, "orderd B")
	sf := tlsfilestest.WriteFiles(t, srvDir, mesh, a)
	cf := tlsfilestest.WriteFiles(t, cliDir, mesh, mesh.Issue(t, "orderd as a client"))
	addr, stop := start(t, "-listen", "127.0.0.1:0", "-data", t.TempDir(), "-inventory-addr", inv,
		"-tls-cert", sf.Cert, "-tls-key", sf.Key, "-tls-client-ca", sf.CA,
		"-upstream-tls-ca", cf.CA, "-upstream-tls-cert", cf.Cert, "-upstream-tls-key", cf.Key)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	roots := x509.NewCertPool()
	roots.AddCert(mesh.Cert)
	clientOf := func(ca *tlsfilestest.CA) tls.Certificate {
		p := ca.Issue(t, "caller")
		c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dial := func(creds credentials.TransportCredentials) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	health := func(conn *grpc.ClientConn) (*x509.Certificate, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var p peer.Peer
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
		if err != nil {
			return nil, err
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0], nil
	}
	mtls := func() credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientOf(mesh)}})
	}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"TLS without a client certificate", credentials.NewTLS(&tls.Config{RootCAs: roots})},
		{"a client certificate of another CA", credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientOf(stranger)}})},
	} {
		if _, err := health(dial(tc.creds)); err == nil {
			t.Errorf("%s: served, want refused", tc.name)
		}
	}

	conn := dial(mtls())
	got, err := health(conn)
	if err != nil || got.SerialNumber.Cmp(a.Leaf.SerialNumber) != 0 {
		t.Fatalf("mutual TLS: %v, %v; want served with orderd A's certificate", got, err)
	}
	alice := metadata.NewOutgoingContext(context.Background(), passporttest.Metadata(passport.Caller{Subject: "alice", Roles: []string{"customer"}, Auth: "jwt"}))
	ctx, cancel := context.WithTimeout(alice, 5*time.Second)
	defer cancel()
	o, err := orderv1.NewOrderServiceClient(conn).CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: []*orderv1.OrderLine{{Sku: "sku-apple", Quantity: 2}}})
	if err != nil || o.GetTotalCents() != 240 {
		t.Fatalf("an order priced through the inventory over mutual TLS: %v, %v", o, err)
	}

	tlsfilestest.Write(t, sf.Cert, b.CertPEM)
	tlsfilestest.Write(t, sf.Key, b.KeyPEM)
	got, err = health(dial(mtls())) // a new connection
	if err != nil || got.SerialNumber.Cmp(b.Leaf.SerialNumber) != 0 {
		t.Fatalf("after the rotation: %v, %v; want orderd B's certificate", got, err)
	}
}
