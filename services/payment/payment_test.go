package payment_test

import (
	"context"
	"fmt"
	"github.com/acme/shopgate/services/storage/storagetest"
	"io"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/events/eventstest"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"github.com/acme/shopgate/services/payment"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	path   string
	store  *payment.SQLStore
	svc    *payment.Service
	client paymentv1.PaymentServiceClient
	stop   func()
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return startAt(t, filepath.Join(t.TempDir(), "payment.db"))
}

func startAt(t *testing.T, path string) *harness {
	t.Helper()
	store, err := payment.Open(context.Background(), storagetest.Source(t, path))
	if err != nil {
		t.Fatal(err)
	}
	svc := payment.New(store, payment.Options{Logger: quiet})
	srv := grpcserver.New(grpcserver.Options{Logger: quiet, Passport: passporttest.Verifier()})
	svc.Register(srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///payment",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{path: path, store: store, svc: svc, client: paymentv1.NewPaymentServiceClient(conn)}
	h.stop = func() { _ = conn.Close(); srv.Stop(); _ = store.Close() }
	t.Cleanup(h.stop)
	return h
}

func as(sub, roles string) context.Context {
	return metadata.NewOutgoingContext(context.Background(), passporttest.Metadata(passport.Caller{Subject: sub, Roles: strings.Fields(roles), Auth: "jwt"}))
}

func alice() context.Context { return as("alice", "customer") }
func bob() context.Context   { return as("bob", "customer") }
func admin() context.Context { return as("root", "admin") }

func created(orderID, method string) *eventsv1.OrderCreated {
	return &eventsv1.OrderCreated{OrderId: orderID, CustomerId: "alice", TotalCents: 360, Currency: "USD", PaymentMethod: method,
		Lines: []*eventsv1.Line{{Sku: "sku-apple", Quantity: 3, UnitPriceCents: 120}}}
}

// outbox returns the payload types recorded for orderID, oldest first.
func (h *harness) outbox(t *testing.T, orderID string) []string {
	t.Helper()
	var out []string
	for _, env := range h.envelopes(t, orderID) {
		out = append(out, env.GetType())
	}
	return out
}

// envelopes returns the envelopes recorded for orderID, oldest first.
func (h *harness) envelopes(t *testing.T, orderID string) []*eventsv1.Envelope {
	t.Helper()
	return eventstest.Outbox(t, h.store.DB(), orderID)
}

// The trace contexts the saga tests hand over (eventstest).
var createdTrace, cancelledTrace = eventstest.CreatedTrace, eventstest.CancelledTrace

func (h *harness) paymentOf(t *testing.T, orderID string) *paymentv1.Payment {
	t.Helper()
	resp, err := h.client.ListPayments(admin(), &paymentv1.ListPaymentsRequest{OrderId: orderID})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetPayments()) > 1 {
		t.Fatalf("%d payments for one order", len(resp.GetPayments()))
	}
	if len(resp.GetPayments()) == 0 {
		return nil
	}
	return resp.GetPayments()[0]
}

const (
	captured = "shop.events.v1.PaymentCaptured"
	declined = "shop.events.v1.PaymentDeclined"
	refunded = "shop.events.v1.PaymentRefunded"
)

func TestSaga(t *testing.T) {
	type step struct {
		eventID string
		ev      proto.Message
	}
	cancel := &eventsv1.OrderCancelled{OrderId: "o1", Reason: "out of stock: sku sku-apple"}
	tests := []struct {
		name       string
		steps      []step
		wantStatus paymentv1.PaymentStatus // UNSPECIFIED: no payment
		wantReason string
		wantEvents []string
	}{
		{"card ok is captured once", []step{{"e1", created("o1", "pm_card_ok")}, {"e1", created("o1", "pm_card_ok")}},
			paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED, "", []string{captured}},
		{"empty method is the default card", []step{{"e1", created("o1", "")}}, paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED, "", []string{captured}},
		{"same order under a new event id is charged once", []step{{"e1", created("o1", "pm_card_ok")}, {"e2", created("o1", "pm_card_ok")}},
			paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED, "", []string{captured}},
		{"declined card", []step{{"e1", created("o1", "pm_card_declined")}}, paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED, "card declined", []string{declined}},
		{"unsupported method", []step{{"e1", created("o1", "pm_bitcoin")}}, paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED, "unsupported payment method", []string{declined}},
		{"cancel refunds a capture once", []step{{"e1", created("o1", "pm_card_ok")}, {"e2", cancel}, {"e2", cancel}, {"e3", cancel}},
			paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED, "", []string{captured, refunded}},
		{"cancel of a declined payment changes nothing", []step{{"e1", created("o1", "pm_card_declined")}, {"e2", cancel}},
			paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED, "card declined", []string{declined}},
		{"cancel before created leaves a tombstone", []step{{"e2", cancel}, {"e1", created("o1", "pm_card_ok")}},
			paymentv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			notified := 0
			h.svc.SetNotify(func() { notified++ })
			for _, st := range tc.steps {
				var err error
				switch ev := st.ev.(type) {
				case *eventsv1.OrderCreated:
					err = h.svc.HandleOrderCreated(events.WithTraceContext(context.Background(), createdTrace), st.eventID, ev)
				case *eventsv1.OrderCancelled:
					err = h.svc.HandleOrderCancelled(events.WithTraceContext(context.Background(), cancelledTrace), st.eventID, ev)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			p := h.paymentOf(t, "o1")
			if p.GetStatus() != tc.wantStatus || p.GetDeclineReason() != tc.wantReason {
				t.Fatalf("payment %v %q, want %v %q", p.GetStatus(), p.GetDeclineReason(), tc.wantStatus, tc.wantReason)
			}
			if p != nil && (p.GetAmountCents() != 360 || p.GetCurrency() != "USD" || p.GetCustomerId() != "alice") {
				t.Fatalf("payment %v", p)
			}
			if got := h.outbox(t, "o1"); fmt.Sprint(got) != fmt.Sprint(tc.wantEvents) {
				t.Fatalf("events %v, want %v", got, tc.wantEvents)
			}
			if notified != len(tc.wantEvents) {
				t.Fatalf("notified %d times, want %d", notified, len(tc.wantEvents))
			}
			for _, env := range h.envelopes(t, "o1") {
				want := createdTrace // PaymentCaptured, PaymentDeclined
				if env.GetType() == refunded {
					want = cancelledTrace
				}
				if got := env.GetTraceContext(); !maps.Equal(got, want) {
					t.Fatalf("%s trace context %v, want the handled event's %v", env.GetType(), got, want)
				}
			}
		})
	}
}

func TestReadAndRefund(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.svc.HandleOrderCreated(ctx, "e1", created("ok", "pm_card_ok")); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.HandleOrderCreated(ctx, "e2", created("no", "pm_card_declined")); err != nil {
		t.Fatal(err)
	}
	ok, no := h.paymentOf(t, "ok"), h.paymentOf(t, "no")

	t.Run("get", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			ctx  context.Context
			id   string
			code codes.Code
		}{
			{"owner", alice(), ok.GetId(), codes.OK},
			{"admin", admin(), ok.GetId(), codes.OK},
			{"someone else", bob(), ok.GetId(), codes.NotFound},
			{"anonymous", context.Background(), ok.GetId(), codes.Unauthenticated},
			{"unknown", alice(), "ffff", codes.NotFound},
			{"malformed", alice(), "a b", codes.InvalidArgument},
			{"empty", alice(), "", codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := h.client.GetPayment(tc.ctx, &paymentv1.GetPaymentRequest{Id: tc.id})
				if status.Code(err) != tc.code {
					t.Fatalf("code %v, want %v", status.Code(err), tc.code)
				}
				if err == nil && !proto.Equal(got, ok) {
					t.Fatalf("got %v", got)
				}
			})
		}
	})
	t.Run("list", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			ctx   context.Context
			order string
			code  codes.Code
			n     int
		}{
			{"owner", alice(), "ok", codes.OK, 1},
			{"someone else sees nothing", bob(), "ok", codes.OK, 0},
			{"admin", admin(), "ok", codes.OK, 1},
			{"order_id required", alice(), "", codes.InvalidArgument, 0},
			{"anonymous", context.Background(), "ok", codes.Unauthenticated, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := h.client.ListPayments(tc.ctx, &paymentv1.ListPaymentsRequest{OrderId: tc.order})
				if status.Code(err) != tc.code || len(resp.GetPayments()) != tc.n {
					t.Fatalf("got %d payments, %v; want %d, %v", len(resp.GetPayments()), err, tc.n, tc.code)
				}
			})
		}
	})
	t.Run("refund", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			ctx        context.Context
			id         string
			code       codes.Code
			wantEvents int
		}{
			{"anonymous", context.Background(), ok.GetId(), codes.Unauthenticated, 0},
			{"customer, even the owner", alice(), ok.GetId(), codes.PermissionDenied, 0},
			{"admin refunds", metadata.AppendToOutgoingContext(admin(), "traceparent", cancelledTrace["traceparent"]), ok.GetId(), codes.OK, 1},
			{"refund again returns it unchanged", admin(), ok.GetId(), codes.OK, 1},
			{"declined cannot be refunded", admin(), no.GetId(), codes.FailedPrecondition, 1},
			{"unknown", admin(), "ffff", codes.NotFound, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := h.client.RefundPayment(tc.ctx, &paymentv1.RefundPaymentRequest{Id: tc.id})
				if status.Code(err) != tc.code {
					t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.code)
				}
				if err == nil && got.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED {
					t.Fatalf("status %v", got.GetStatus())
				}
				n := 0
				for _, typ := range h.outbox(t, "ok") {
					if typ == refunded {
						n++
					}
				}
				if n != tc.wantEvents {
					t.Fatalf("%d PaymentRefunded events, want %d", n, tc.wantEvents)
				}
			})
		}
		// the admin's refund is traced like the request that made it
		for _, env := range h.envelopes(t, "ok") {
			if env.GetType() == refunded && !maps.Equal(env.GetTraceContext(), cancelledTrace) {
				t.Fatalf("PaymentRefunded trace context %v, want the request's %v", env.GetTraceContext(), cancelledTrace)
			}
		}
	})
	t.Run("restart keeps everything", func(t *testing.T) {
		h.stop()
		h2 := startAt(t, h.path)
		got, err := h2.client.GetPayment(alice(), &paymentv1.GetPaymentRequest{Id: ok.GetId()})
		if err != nil || got.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED || got.GetAmountCents() != 360 {
			t.Fatalf("after restart: %v, %v", got, err)
		}
		if err := h2.svc.HandleOrderCreated(ctx, "e1", created("ok", "pm_card_ok")); err != nil {
			t.Fatal(err)
		}
		if n := len(h2.outbox(t, "ok")); n != 2 {
			t.Fatalf("redelivery after restart recorded events again: %d", n)
		}
	})
}
