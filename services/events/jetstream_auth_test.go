package events_test

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/acme/shopgate/internal/testnats"
	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
	"github.com/acme/shopgate/services/events"
)

var quietLog = slog.New(slog.DiscardHandler)

// r3Config is a broker configuration for a three-node cluster with quick retries.
func r3Config(replicas int) events.Config {
	return events.Config{
		Replicas: replicas, Logger: quietLog, ReconnectWait: 20 * time.Millisecond,
		RequestTimeout: 2 * time.Second, AckWait: 3 * time.Second, BackOff: []time.Duration{20 * time.Millisecond},
	}
}

func dial(t *testing.T, url string, cfg events.Config) *events.JetStream {
	t.Helper()
	b, err := events.Dial(ctxTimeout(t, 30*time.Second), url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// nodeIndex returns the cluster node index of a server name ("n1" is 1).
func nodeIndex(t *testing.T, name string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(name, "n%d", &i); err != nil {
		t.Fatalf("server name %q: %v", name, err)
	}
	return i
}

// replicasOf returns the replica count a stream's and a consumer's configuration ask for and
// the followers (Cluster.Replicas, the leader excluded) each reports.
func replicasOf(t *testing.T, b *events.JetStream, consumer string) (stream, streamFollowers, cons, consFollowers int, streamLeader string) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	s, err := b.JetStream().Stream(ctx, b.Stream())
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Consumer(ctx, consumer)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	followers := func(c *jetstream.ClusterInfo) int {
		if c == nil { // between two leaders
			return 0
		}
		return len(c.Replicas)
	}
	if si.Cluster != nil {
		streamLeader = si.Cluster.Leader
	}
	return si.Config.Replicas, followers(si.Cluster), ci.Config.Replicas, followers(ci.Cluster), streamLeader
}

// received collects the distinct event ids a consumer handled, and how many deliveries.
type received struct {
	mu         sync.Mutex
	ids        map[string]bool
	deliveries int
}

func (r *received) handle(_ context.Context, m events.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[m.ID] = true
	r.deliveries++
	return nil
}

func (r *received) count() (distinct, deliveries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids), r.deliveries
}

// On a three-node cluster at R3, a publisher and a consumer on their own connections keep
// working while the stream's leader node is stopped and restarted and then another node
// crashes and comes back: every message published is delivered (at least once), none lost.
func TestJetStreamR3KeepsEveryEventThroughNodeRestarts(t *testing.T) {
	c := testnats.StartCluster(t, 3)
	pub := dial(t, c.URL(), r3Config(3))
	consumer := dial(t, c.URL(), r3Config(3))
	got := &received{ids: map[string]bool{}}
	sub, err := consumer.Subscribe(ctxTimeout(t, 30*time.Second), "r3", []string{orderCreated}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()

	// The publisher retries each message until the broker acknowledges it, as the relay does.
	const total = 300
	var published sync.WaitGroup
	progress := make(chan int, total)
	published.Add(1)
	pubErr := make(chan error, 1)
	go func() {
		defer published.Done()
		defer close(progress)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := range total {
			msg := events.Message{Type: orderCreated, ID: fmt.Sprintf("r3-%03d", i), Data: []byte("x")}
			for {
				err := pub.Publish(ctx, msg)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					pubErr <- fmt.Errorf("message %d: %w", i, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			progress <- i + 1
			time.Sleep(2 * time.Millisecond) // spread the messages over the node changes
		}
	}()
	waitPublished := func(n int) {
		t.Helper()
		for i := range progress {
			if i >= n {
				return
			}
		}
	}

	_, _, _, _, leader := replicasOf(t, pub, "r3")
	waitPublished(50)
	c.StopNode(nodeIndex(t, leader)) // the stream leader, handing over
	waitPublished(100)
	c.RestartNode(nodeIndex(t, leader))
	waitPublished(150)
	crashed := (nodeIndex(t, leader) + 1) % 3
	c.KillNode(crashed) // a follower, at once
	waitPublished(200)
	c.RestartNode(crashed)
	for range progress {
	}
	published.Wait()
	select {
	case err := <-pubErr:
		t.Fatalf("publishing: %v", err)
	default:
	}

	eventually(t, 30*time.Second, "every published event delivered", func() bool {
		n, _ := got.count()
		return n == total
	})
	distinct, deliveries := got.count()
	t.Logf("%d events, %d deliveries", distinct, deliveries)
	stream, streamFollowers, cons, consFollowers, _ := replicasOf(t, pub, "r3")
	if stream != 3 || streamFollowers != 2 || consFollowers != 2 {
		t.Fatalf("stream R%d with %d followers, consumer R%d with %d followers; want R3 and 2 followers each",
			stream, streamFollowers, cons, consFollowers)
	}
}

// An R1 stream and its consumer become R3 when the services restart with -broker-replicas 3,
// and keep their messages.
func TestJetStreamReplicasRaiseUpdatesTheStream(t *testing.T) {
	c := testnats.StartCluster(t, 3)
	r1 := dial(t, c.URL(), r3Config(1))
	got := &received{ids: map[string]bool{}}
	sub, err := r1.Subscribe(ctxTimeout(t, 10*time.Second), "raise", []string{orderCreated}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.Publish(ctxTimeout(t, 5*time.Second), events.Message{Type: orderCreated, ID: "before", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the first event delivered", func() bool { n, _ := got.count(); return n == 1 })
	if s, sf, _, cf, _ := replicasOf(t, r1, "raise"); s != 1 || sf != 0 || cf != 0 {
		t.Fatalf("before: stream R%d, %d stream followers, %d consumer followers; want R1 alone", s, sf, cf)
	}
	sub.Stop()

	r3 := dial(t, c.URL(), r3Config(3))
	sub, err = r3.Subscribe(ctxTimeout(t, 10*time.Second), "raise", []string{orderCreated}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	eventually(t, 20*time.Second, "stream and consumer at R3", func() bool {
		s, sf, _, cf, _ := replicasOf(t, r3, "raise")
		return s == 3 && sf == 2 && cf == 2
	})
	if err := r3.Publish(ctxTimeout(t, 5*time.Second), events.Message{Type: orderCreated, ID: "after", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the second event delivered", func() bool { n, _ := got.count(); return n == 2 })
	ids := streamIDs(t, r3)
	if len(ids) != 2 || ids[0] != "before" || ids[1] != "after" {
		t.Fatalf("stream holds %v, want [before after]", ids)
	}
}

// streamIDs returns the message ids in b's stream, in order.
func streamIDs(t *testing.T, b *events.JetStream) []string {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	s, err := b.JetStream().Stream(ctx, b.Stream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

// writeSecret writes a secret file of the test and returns its path.
func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The broker admits the services with the right credentials and refuses the others at once,
// with an error that says so, rather than after the retries run out.
func TestBrokerCredentials(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	op := testnats.NewOperator(t)

	for _, tc := range []struct {
		name      string
		server    testnats.Option
		good, bad events.Config
	}{
		{"user and password", testnats.WithUsers(testnats.User{Name: "orderd", Password: "s3cret"}),
			events.Config{User: "orderd", PasswordFile: writeSecret(t, "pw", "s3cret\n")},
			events.Config{User: "orderd", PasswordFile: writeSecret(t, "pw", "wrong")}},
		{"token", testnats.WithToken("t0ken"),
			events.Config{TokenFile: writeSecret(t, "token", "t0ken\n")},
			events.Config{TokenFile: writeSecret(t, "token", "wrong")}},
		{"nkey", testnats.WithNKeys(pub),
			events.Config{NKeyFile: writeSecret(t, "user.nk", string(seed))},
			events.Config{NKeyFile: writeSecret(t, "user.nk", string(strangerSeed))}},
		{"credentials file", testnats.WithOperator(op),
			events.Config{CredsFile: writeSecret(t, "svc.creds", string(op.UserCreds(t, "orderd")))},
			events.Config{CredsFile: writeSecret(t, "svc.creds", string(testnats.NewOperator(t).UserCreds(t, "stranger")))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testnats.StartCluster(t, 1, tc.server)
			tc.good.Logger = quietLog
			b := dial(t, c.URL(), tc.good)
			if err := b.Publish(ctxTimeout(t, 5*time.Second), events.Message{Type: orderCreated, ID: "1", Data: []byte("x")}); err != nil {
				t.Fatalf("publishing with the right credentials: %v", err)
			}
			for name, cfg := range map[string]events.Config{"wrong credentials": tc.bad, "no credentials": {}} {
				cfg.Logger = quietLog
				start := time.Now()
				b, err := events.Dial(ctxTimeout(t, 20*time.Second), c.URL(), cfg)
				if err == nil {
					_ = b.Close()
					t.Fatalf("%s: connected", name)
				}
				if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "refused the credentials") {
					t.Errorf("%s: %v; want the broker's refusal", name, err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("%s: the refusal took %v", name, d)
				}
			}
		})
	}
}

// A broker that is not up yet when the service starts and then refuses its credentials fails
// Dial with the refusal, not with the end of the retries.
func TestBrokerRefusalAfterTheBrokerComesUp(t *testing.T) {
	c := testnats.StartCluster(t, 1, testnats.WithToken("t0ken"))
	c.StopNode(0)
	done := make(chan error, 1)
	go func() {
		b, err := events.Dial(ctxTimeout(t, 30*time.Second), c.URL(), events.Config{
			Logger: quietLog, ReconnectWait: 20 * time.Millisecond, TokenFile: writeSecret(t, "token", "wrong"),
		})
		if err == nil {
			_ = b.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Dial returned while the broker was down: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.RestartNode(0)
	select {
	case err := <-done:
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("%v; want the broker's refusal", err)
		}
		t.Logf("Dial: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Dial still waiting 10s after the broker came up")
	}
}

// Credentials the configuration gets wrong fail Dial at once, naming the problem.
func TestBrokerCredentialsConfigErrors(t *testing.T) {
	pw := writeSecret(t, "pw", "x")
	for _, tc := range []struct {
		name string
		cfg  events.Config
		want string
	}{
		{"user without password file", events.Config{User: "u"}, "go together"},
		{"password file without user", events.Config{PasswordFile: pw}, "go together"},
		{"two methods", events.Config{User: "u", PasswordFile: pw, TokenFile: pw}, "not user and token"},
		{"missing password file", events.Config{User: "u", PasswordFile: filepath.Join(t.TempDir(), "none")}, "password file"},
		{"empty token file", events.Config{TokenFile: writeSecret(t, "empty", " \n")}, "is empty"},
		{"missing creds file", events.Config{CredsFile: filepath.Join(t.TempDir(), "none.creds")}, "credentials file"},
		{"bad nkey seed", events.Config{NKeyFile: pw}, "nkey seed file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = quietLog
			// Nothing listens there: the configuration fails before any connection.
			b, err := events.Dial(ctxTimeout(t, 5*time.Second), "nats://127.0.0.1:1", tc.cfg)
			if err == nil {
				_ = b.Close()
				t.Fatal("dialed")
			}
			if !strings.Contains(err.Error(), tc.want) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%v; want an error about %q", err, tc.want)
			}
		})
	}
}

// Credentials are for an external broker: the embedded one refuses them, as it does TLS.
func TestEmbeddedBrokerRefusesCredentials(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b, err := e.Connect(ctxTimeout(t, 5*time.Second), events.Config{Logger: quietLog, TokenFile: writeSecret(t, "token", "t")})
	if err == nil {
		_ = b.Close()
		t.Fatal("connected")
	}
	if !strings.Contains(err.Error(), "external broker") {
		t.Fatalf("%v; want a word about the external broker", err)
	}
}

// The full production setup: a three-node cluster at R3 with TLS and user and password.
func TestJetStreamR3OverTLSWithCredentials(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "nats CA")
	p := ca.Issue(t, "nats")
	cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := testnats.StartCluster(t, 3,
		testnats.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}),
		testnats.WithUsers(testnats.User{Name: "svc", Password: "pw"}))
	files := tlsfilestest.WriteFiles(t, t.TempDir(), ca, p)
	client, err := tlsfiles.NewClient(tlsfiles.ClientFiles{CAFile: files.CA}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r3Config(3)
	cfg.TLS, cfg.User, cfg.PasswordFile = client, "svc", writeSecret(t, "pw", "pw")
	b := dial(t, c.URL(), cfg)
	got := &received{ids: map[string]bool{}}
	sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "tls", []string{orderCreated}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := b.Publish(ctxTimeout(t, 5*time.Second), events.Message{Type: orderCreated, ID: "1", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the event delivered", func() bool { n, _ := got.count(); return n == 1 })
	if !b.Conn().TLSRequired() {
		t.Error("the connection is not over TLS")
	}
	if s, sf, _, cf, _ := replicasOf(t, b, "tls"); s != 3 || sf != 2 || cf != 2 {
		t.Fatalf("stream R%d with %d followers, consumer with %d; want R3", s, sf, cf)
	}
}

func TestBrokerAuthFlags(t *testing.T) {
	var c events.RuntimeConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	args := []string{"-broker-replicas", "3", "-broker-user", "orderd", "-broker-password-file", "/run/pw",
		"-broker-token-file", "/run/token", "-broker-creds", "/run/svc.creds", "-broker-nkey", "/run/svc.nk"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	want := events.Config{Replicas: 3, User: "orderd", PasswordFile: "/run/pw", TokenFile: "/run/token", CredsFile: "/run/svc.creds", NKeyFile: "/run/svc.nk"}
	got := c.Broker
	if got.Replicas != want.Replicas || got.User != want.User || got.PasswordFile != want.PasswordFile ||
		got.TokenFile != want.TokenFile || got.CredsFile != want.CredsFile || got.NKeyFile != want.NKeyFile {
		t.Fatalf("flags %v gave %+v", args, got)
	}
}
