package inventory_test

import (
	"context"
	"fmt"
	"testing"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
)

// BenchmarkGetItem is one public read over gRPC (bufconn) from a real SQLite file.
func BenchmarkGetItem(b *testing.B) {
	h := newHarness(b)
	if _, err := h.client.UpsertItem(admin(), &inventoryv1.UpsertItemRequest{Item: apple()}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := &inventoryv1.GetItemRequest{Sku: "sku-apple"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.client.GetItem(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandleOrderCreated is one reservation: inbox row, stock move, reservation and
// outbox row in one immediate transaction on a real SQLite file.
func BenchmarkHandleOrderCreated(b *testing.B) {
	h := newHarness(b)
	if _, err := h.client.UpsertItem(admin(), &inventoryv1.UpsertItemRequest{Item: with(func(it *inventoryv1.Item) { it.Available = 1 << 30 })}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i++
		id := fmt.Sprintf("o%d", i)
		if err := h.svc.HandleOrderCreated(ctx, "e"+id, created(id, line(applesSKU, 1))); err != nil {
			b.Fatal(err)
		}
	}
}
