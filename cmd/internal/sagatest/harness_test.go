package sagatest

import (
	"context"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// externalURL is the NATS server this machine runs.
const externalURL = "nats://127.0.0.1:4222"

// binDir holds the binaries, built once per test binary (TestMain removes it).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

// binaries builds cmd/orderd, cmd/paymentd, cmd/inventoryd and cmd/storefrontd once.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildErr = proctest.Build(binDir, "./cmd/orderd", "./cmd/paymentd", "./cmd/inventoryd", "./cmd/storefrontd")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// freeAddr returns a loopback address with a port free right now; a restarted process takes the
// same one again (proctest.FreeAddr).
func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }

// requireExternal skips (or fails, when CI=true) when the machine's NATS is not running.
func requireExternal(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		msg := fmt.Sprintf("NATS with JetStream is not running at %s: %v", externalURL, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
}

// proc is one service process, restartable on the same port and data folder.
type proc struct {
	t    *testing.T
	name string // orderd, paymentd, inventoryd
	bin  string
	addr string
	args []string // without -listen
	once []string // added to the first run only
	log  string   // stderr of every run, appended

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{}
}

// start runs the process and waits until its gRPC health service answers SERVING. extra
// arguments apply to this run only.
func (p *proc) start(extra ...string) {
	p.t.Helper()
	args := append(append(append([]string{"-listen", p.addr}, p.args...), p.once...), extra...)
	p.once = nil
	cmd, done, err := proctest.Start(p.name, filepath.Join(p.bin, p.name), args, p.log)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	if err := proctest.GRPCServing(p.addr, 30*time.Second, done); err != nil {
		p.t.Fatalf("%s %v:\n%s", p.name, err, p.logs())
	}
}

// kill sends SIGKILL: no shutdown code runs, as in a crash.
func (p *proc) kill() { p.signal(syscall.SIGKILL) }

// stop sends SIGTERM and waits for the graceful stop.
func (p *proc) stop() { p.signal(syscall.SIGTERM) }

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := proctest.Signal(cmd, done, sig); err != nil {
		p.t.Errorf("%s %v", p.name, err)
	}
}

func (p *proc) logs() string { return proctest.Logs(p.log) }

// broker is where the stack's events go.
type broker struct {
	url      string
	flags    []string            // -broker-url and the stream's own names
	flagsOf  map[string][]string // flags for one process instead of flags
	embedded *events.Embedded    // the test's own server, restartable; nil for the machine's NATS
	cfg      events.Config       // stream and prefix, for inspection
	js       jetstream.JetStream
	nc       *nats.Conn
}

// externalBroker is the machine's NATS with a stream and subject prefix of the test's own,
// deleted at the end.
func externalBroker(t *testing.T) *broker {
	t.Helper()
	requireExternal(t)
	id := events.NewID()[:12]
	b := &broker{url: externalURL, cfg: events.Config{Stream: "SAGA_" + id, SubjectPrefix: "saga" + id + "."}}
	b.flags = []string{"-broker-url", b.url, "-broker-stream", b.cfg.Stream, "-broker-subject-prefix", b.cfg.SubjectPrefix}
	b.connect(t)
	t.Cleanup(func() {
		_ = b.js.DeleteStream(context.Background(), b.cfg.Stream)
	})
	return b
}

// ownBroker is a NATS JetStream server run by the test on a loopback TCP port, playing an
// external cluster that the test may stop and start.
func ownBroker(t *testing.T) *broker {
	t.Helper()
	e, err := events.StartEmbedded(t.TempDir(), events.EmbeddedConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	b := &broker{url: e.ClientURL(), embedded: e}
	b.flags = []string{"-broker-url", b.url}
	b.connect(t)
	return b
}

func (b *broker) connect(t *testing.T) {
	t.Helper()
	nc, err := nats.Connect(b.url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b.nc, b.js = nc, js
}

// subjectCounts counts the stream's messages by event type (the subject without the prefix).
func (b *broker) subjectCounts(t *testing.T) map[string]int {
	t.Helper()
	stream := b.cfg.Stream
	if stream == "" {
		stream = "SHOP_EVENTS"
	}
	prefix := b.cfg.SubjectPrefix
	if prefix == "" {
		prefix = events.SubjectPrefix
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for subj, n := range info.State.Subjects {
		out[strings.TrimPrefix(subj, prefix)] = int(n)
	}
	return out
}

// stack is the three services as processes on one broker.
type stack struct {
	t                         *testing.T
	broker                    *broker
	inventory, payment, order *proc
	inv                       inventoryv1.InventoryServiceClient
	pay                       paymentv1.PaymentServiceClient
	ord                       orderv1.OrderServiceClient
	jwks                      string // the passport keys the services trust (-passport-jwks)
}

// stackOptions adds flags to every service (common) or to one, for every run or for the
// first run only (once).
type stackOptions struct {
	common                    []string
	inventory, payment, order []string
	once                      map[string][]string // by process name
}

// newStack starts inventoryd, paymentd and orderd on broker and connects gRPC clients to them.
// Every process is killed at the end of the test; on failure their logs are printed.
func newStack(t *testing.T, b *broker, opts stackOptions) *stack {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	jwks := passporttest.WriteJWKS(t)
	newProc := func(name string, args ...string) *proc {
		flags := b.flags
		if f, ok := b.flagsOf[name]; ok {
			flags = f
		}
		return &proc{t: t, name: name, bin: bin, addr: freeAddr(t), log: filepath.Join(dir, name+".log"),
			args: append(append([]string{"-data", filepath.Join(dir, name), "-passport-jwks", jwks}, flags...), args...), once: opts.once[name]}
	}
	s := &stack{t: t, broker: b, jwks: jwks}
	s.inventory = newProc("inventoryd", append(opts.common, opts.inventory...)...)
	s.payment = newProc("paymentd", append(opts.common, opts.payment...)...)
	s.order = newProc("orderd", append(append(opts.common, opts.order...), "-inventory-addr", s.inventory.addr)...)
	t.Cleanup(func() {
		for _, p := range []*proc{s.order, s.payment, s.inventory} {
			p.kill()
		}
		if t.Failed() {
			for _, p := range []*proc{s.order, s.payment, s.inventory} {
				t.Logf("--- %s log (successful RPCs left out: the tests poll):\n%s", p.name, proctest.Tail(proctest.WithoutPolls(p.logs()), 200))
			}
		}
	})
	for _, p := range []*proc{s.inventory, s.payment, s.order} {
		p.start()
	}
	if b.js == nil {
		b.connect(t) // the broker lives in one of the processes
	}
	s.inv = inventoryv1.NewInventoryServiceClient(dial(t, s.inventory.addr))
	s.pay = paymentv1.NewPaymentServiceClient(dial(t, s.payment.addr))
	s.ord = orderv1.NewOrderServiceClient(dial(t, s.order.addr))
	return s
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// as returns a context carrying the passport the gateway attaches: subject and roles, signed
// with the test key the processes trust (passporttest, through -passport-jwks).
func as(ctx context.Context, subject, roles string) context.Context {
	md := passporttest.Metadata(passport.Caller{Subject: subject, Roles: strings.Split(roles, ","), Auth: "jwt"})
	return metadata.NewOutgoingContext(ctx, md)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// putItem creates or replaces an item with the given stock, as an admin.
func (s *stack) putItem(sku string, available int32, priceCents int64) {
	s.t.Helper()
	_, err := s.inv.UpsertItem(as(ctxTimeout(s.t, 5*time.Second), "ops", "admin"), &inventoryv1.UpsertItemRequest{
		Item: &inventoryv1.Item{Sku: sku, Name: "Item " + sku, PriceCents: priceCents, Currency: "USD", Available: available},
	})
	if err != nil {
		s.t.Fatalf("upserting %s: %v", sku, err)
	}
}

func (s *stack) item(sku string) *inventoryv1.Item {
	s.t.Helper()
	it, err := s.inv.GetItem(ctxTimeout(s.t, 5*time.Second), &inventoryv1.GetItemRequest{Sku: sku})
	if err != nil {
		s.t.Fatalf("reading %s: %v", sku, err)
	}
	return it
}

// createOrder places an order of qty units of sku as customer.
func (s *stack) createOrder(customer, sku string, qty int32, method string) *orderv1.Order {
	s.t.Helper()
	o, err := s.ord.CreateOrder(as(ctxTimeout(s.t, 10*time.Second), customer, "customer"), &orderv1.CreateOrderRequest{
		Items: []*orderv1.OrderLine{{Sku: sku, Quantity: qty}}, PaymentMethod: method,
	})
	if err != nil {
		s.t.Fatalf("creating order: %v", err)
	}
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		s.t.Fatalf("new order is %v, want PENDING", o.GetStatus())
	}
	return o
}

func (s *stack) getOrder(customer, id string) (*orderv1.Order, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.ord.GetOrder(as(ctx, customer, "customer"), &orderv1.GetOrderRequest{Id: id})
}

// waitFinal polls the order until it is CONFIRMED or CANCELLED.
func (s *stack) waitFinal(customer, id string, within time.Duration) *orderv1.Order {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		o, err := s.getOrder(customer, id)
		if err == nil && o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			return o
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("order %s still %v (%v) after %v", id, o.GetStatus(), err, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// payments lists the payments of an order, as an admin.
func (s *stack) payments(orderID string) []*paymentv1.Payment {
	s.t.Helper()
	res, err := s.pay.ListPayments(as(ctxTimeout(s.t, 5*time.Second), "ops", "admin"), &paymentv1.ListPaymentsRequest{OrderId: orderID})
	if err != nil {
		s.t.Fatalf("listing payments of %s: %v", orderID, err)
	}
	return res.GetPayments()
}

// paymentStatuses counts an order's payments by status.
func (s *stack) paymentStatuses(orderID string) map[paymentv1.PaymentStatus]int {
	out := map[paymentv1.PaymentStatus]int{}
	for _, p := range s.payments(orderID) {
		out[p.GetStatus()]++
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brokerInInventory is a broker embedded in the inventoryd process (no -broker-url: it embeds
// one, listening on a loopback port), which the other processes dial: restarting inventoryd
// restarts the broker.
func brokerInInventory(t *testing.T) *broker {
	t.Helper()
	addr := freeAddr(t)
	b := &broker{url: "nats://" + addr}
	b.flags = []string{"-broker-url", b.url}
	b.flagsOf = map[string][]string{"inventoryd": {"-broker-listen", addr}}
	return b
}
