package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"github.com/acme/shopgate/services/pgnotify/pgnotifytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// TestRunWatchNotify: two orderd on one database with -watch-notify-url LISTEN on the channel
// while they run, a watch on one sees a cancel through the other, and they stop listening when
// stopped.
func TestRunWatchNotify(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	dir := t.TempDir()
	inv := inventoryAt(t)
	listeners := func() int {
		var n int
		pgnotifytest.QueryRow(t, url, `SELECT count(*) FROM pg_stat_activity WHERE query = $1`, []any{`LISTEN "` + ch + `"`}, &n)
		return n
	}
	args := []string{"-listen", "127.0.0.1:0", "-data", dir, "-inventory-addr", inv, "-watch-notify-url", url, "-watch-notify-channel", ch}
	addr1, stop1 := start(t, args...)
	addr2, stop2 := start(t, args...)
	if n := listeners(); n != 2 {
		t.Fatalf("%d backends listen on %s, want 2", n, ch)
	}
	client := func(addr string) orderv1.OrderServiceClient {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return orderv1.NewOrderServiceClient(conn)
	}
	c1, c2 := client(addr1), client(addr2)
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(),
		passporttest.Metadata(passport.Caller{Subject: "alice", Roles: []string{"customer"}, Auth: "jwt"})), 10*time.Second)
	defer cancel()
	o, err := c1.CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: []*orderv1.OrderLine{{Sku: "sku-apple", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c1.WatchOrder(ctx, &orderv1.WatchOrderRequest{Id: o.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.CancelOrder(ctx, &orderv1.CancelOrderRequest{Id: o.GetId()}); err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("watch on the other replica: %v, %v", m.GetStatus(), err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream did not end: %v", err)
	}
	for _, stop := range []func() error{stop1, stop2} {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for listeners() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still listen after the stop", listeners())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunWatchNotifyErrors(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-data", t.TempDir(), "-inventory-addr", "127.0.0.1:1",
		"-passport-jwks", passporttest.WriteJWKS(t), "-watch-notify-url", "postgres://%zz"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-watch-notify-url") {
		t.Fatalf("run with a malformed -watch-notify-url: %v", err)
	}
}
