package testnats_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"go.uber.org/goleak"

	"github.com/acme/shopgate/internal/testnats"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A three-node cluster keeps an R3 stream writable with one node down, and the node that comes
// back on its ports and store catches up with what was written while it was away.
func TestClusterSurvivesNodeRestart(t *testing.T) {
	c := testnats.StartCluster(t, 3)
	if got := strings.Count(c.URL(), "nats://127.0.0.1:"); got != 3 {
		t.Fatalf("URL %q: want 3 nodes", c.URL())
	}
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// A publish in the seconds the stream elects a new leader fails: retried, as a client does.
	sent := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			sent++
			for {
				// The id makes a retry of a publish that did land a duplicate the stream drops.
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(pctx, "t.x", []byte("x"), jetstream.WithMsgID(strconv.Itoa(sent)))
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	publish(5)

	// Node 0 stops the way a rolling restart does, node 1 crashes; both come back.
	for _, step := range []struct {
		node int
		stop func(int)
	}{{0, c.StopNode}, {1, c.KillNode}} {
		step.stop(step.node)
		if c.Server(step.node) != nil {
			t.Fatalf("node %d still listed after it stopped", step.node)
		}
		publish(5) // two of three: a quorum
		c.RestartNode(step.node)
		if c.Server(step.node) == nil {
			t.Fatalf("node %d not listed after RestartNode", step.node)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 15 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream: %d messages, %d followers; want 15 and 2", info.State.Msgs, len(info.Cluster.Replicas))
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			t.Errorf("replica %s: current %v, offline %v", r.Name, r.Current, r.Offline)
		}
	}
}

// Each authentication option admits the clients with the credentials and refuses the others.
func TestClusterAuth(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	nkeyOpt := func(seed []byte) nats.Option {
		return func(o *nats.Options) error {
			kp, err := nkeys.FromSeed(seed)
			if err != nil {
				return err
			}
			pub, _ := kp.PublicKey()
			return nats.Nkey(pub, kp.Sign)(o)
		}
	}
	op := testnats.NewOperator(t)
	credsOpt := func(creds []byte) nats.Option {
		p := filepath.Join(t.TempDir(), "user.creds")
		if err := os.WriteFile(p, creds, 0o600); err != nil {
			t.Fatal(err)
		}
		return nats.UserCredentials(p)
	}
	for _, tc := range []struct {
		name      string
		opt       testnats.Option
		good, bad nats.Option
	}{
		{"users", testnats.WithUsers(testnats.User{Name: "svc", Password: "s3cret"}), nats.UserInfo("svc", "s3cret"), nats.UserInfo("svc", "wrong")},
		{"token", testnats.WithToken("t0ken"), nats.Token("t0ken"), nats.Token("wrong")},
		{"nkeys", testnats.WithNKeys(pub), nkeyOpt(seed), nkeyOpt(strangerSeed)},
		{"operator", testnats.WithOperator(op), credsOpt(op.UserCreds(t, "svc")), credsOpt(testnats.NewOperator(t).UserCreds(t, "stranger"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testnats.StartCluster(t, 1, tc.opt)
			nc, err := nats.Connect(c.URL(), tc.good)
			if err != nil {
				t.Fatalf("right credentials: %v", err)
			}
			nc.Close()
			for name, opt := range map[string]nats.Option{"wrong": tc.bad, "none": nil} {
				nc, err := nats.Connect(c.URL(), opt)
				if err == nil {
					nc.Close()
					t.Fatalf("%s credentials: connected", name)
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("%s credentials: %v, want an authorization violation", name, err)
				}
			}
		})
	}
}

// With TLS, a client that trusts the cluster's CA connects to every node and one that does
// not is refused.
func TestClusterTLS(t *testing.T) {
	ca, other := tlsfilestest.NewCA(t, "cluster CA"), tlsfilestest.NewCA(t, "other CA")
	p := ca.Issue(t, "nats")
	cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := testnats.StartCluster(t, 3, testnats.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}))
	roots := func(ca *tlsfilestest.CA) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.Cert); return p }
	for i := range c.Nodes() {
		nc, err := nats.Connect(c.NodeURL(i), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots(ca)}))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if !nc.TLSRequired() {
			t.Errorf("node %d: connection not over TLS", i)
		}
		nc.Close()
	}
	nc, err := nats.Connect(c.URL(), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots(other)}))
	if err == nil {
		nc.Close()
		t.Fatal("a client trusting another CA connected")
	}
}
