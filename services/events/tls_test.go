package events_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
	"github.com/acme/shopgate/services/events"
)

// startTLSBroker runs a NATS server with JetStream in this process, on a free port of
// 127.0.0.1, TLS only, requiring client certificates of clientCA.
func startTLSBroker(t *testing.T, serverCA, clientCA *tlsfilestest.CA) (*server.Server, string) {
	t.Helper()
	p := serverCA.Issue(t, "broker")
	cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSTimeout: 2,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
			ClientCAs: pool(clientCA), ClientAuth: tls.RequireAndVerifyClientCert,
		},
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the TLS broker did not start")
	}
	return srv, "nats://" + srv.Addr().String()
}

func pool(cas ...*tlsfilestest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// clientCertsSeen returns the subjects of the client certificates of the broker's connections.
func clientCertsSeen(t *testing.T, srv *server.Server) []string {
	t.Helper()
	cz, err := srv.Connz(&server.ConnzOptions{Username: true}) // Username: with the peer certificates
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cz.Conns {
		for _, pc := range c.TLSPeerCerts[:min(1, len(c.TLSPeerCerts))] {
			out = append(out, pc.Subject)
		}
	}
	return out
}

// The services' broker connection over mutual TLS: refused without a client certificate the
// broker trusts, served with one, and after the files rotate the next connection (a
// reconnection of the same client) presents the new certificate.
func TestBrokerMutualTLSWithRotation(t *testing.T) {
	serverCA, clientCA, strangerCA := tlsfilestest.NewCA(t, "broker CA"), tlsfilestest.NewCA(t, "services CA"), tlsfilestest.NewCA(t, "stranger")
	srv, url := startTLSBroker(t, serverCA, clientCA)

	for _, tc := range []struct {
		name string
		ca   *tlsfilestest.CA
		cert tlsfilestest.Pair
		ok   bool
	}{
		{"a client certificate of another CA", serverCA, strangerCA.Issue(t, "stranger"), false},
		{"a CA bundle without the broker's CA", strangerCA, clientCA.Issue(t, "orderd"), false},
		{"the right files", serverCA, clientCA.Issue(t, "orderd A"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := tlsfilestest.WriteFiles(t, dir, tc.ca, tc.cert)
			c, err := tlsfiles.NewClient(tlsfiles.ClientFiles{CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			b, err := events.Dial(ctx, url, uniqueStream(t, events.Config{TLS: c, RequestTimeout: time.Second}))
			if !tc.ok {
				if err == nil {
					b.Close()
					t.Fatal("connected, want refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := clientCertsSeen(t, srv); len(got) != 1 || got[0] != "CN=orderd A" {
				t.Fatalf("the broker sees %q, want [CN=orderd A]", got)
			}
			tlsfilestest.WriteFiles(t, dir, serverCA, clientCA.Issue(t, "orderd B"))
			if err := b.Conn().ForceReconnect(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := clientCertsSeen(t, srv)
				if len(got) == 1 && got[0] == "CN=orderd B" && b.Conn().IsConnected() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the rotation the broker sees %q, want [CN=orderd B]", got)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := b.Publish(ctx, events.Message{Type: "probe", ID: events.NewID(), Data: []byte("{}")}); err != nil {
				t.Fatalf("publishing after the rotation: %v", err)
			}
		})
	}
}

func TestBrokerTLSFlags(t *testing.T) {
	var cfg events.RuntimeConfig
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-broker-tls-ca", "ca.pem", "-broker-tls-cert", "c.pem", "-broker-tls-key", "k.pem", "-broker-tls-server-name", "nats.shop"}); err != nil {
		t.Fatal(err)
	}
	want := tlsfiles.ClientFiles{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "nats.shop"}
	if cfg.TLS != want {
		t.Errorf("flags gave %+v, want %+v", cfg.TLS, want)
	}
}
