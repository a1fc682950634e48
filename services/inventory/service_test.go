package inventory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/inventory"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func apple() *inventoryv1.Item {
	return &inventoryv1.Item{Sku: "sku-apple", Name: "Apple", PriceCents: 120, Currency: "USD", Available: 100}
}

func with(f func(*inventoryv1.Item)) *inventoryv1.Item {
	it := apple()
	f(it)
	return it
}

func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func TestUpsertItem(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name      string
		ctx       context.Context
		item      *inventoryv1.Item
		wantCode  codes.Code
		wantField string
	}{
		{name: "admin creates", ctx: admin(), item: apple(), wantCode: codes.OK},
		{name: "anonymous", ctx: context.Background(), item: apple(), wantCode: codes.Unauthenticated},
		{name: "customer refused", ctx: as("alice", "customer"), item: apple(), wantCode: codes.PermissionDenied},
		{name: "no item", ctx: admin(), item: nil, wantCode: codes.InvalidArgument, wantField: "item"},
		{name: "bad sku", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Sku = "a b" }), wantCode: codes.InvalidArgument, wantField: "item.sku"},
		{name: "long sku", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Sku = strings.Repeat("a", 65) }), wantCode: codes.InvalidArgument, wantField: "item.sku"},
		{name: "empty name", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Name = "" }), wantCode: codes.InvalidArgument, wantField: "item.name"},
		{name: "long name", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Name = strings.Repeat("é", 201) }), wantCode: codes.InvalidArgument, wantField: "item.name"},
		{name: "negative price", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.PriceCents = -1 }), wantCode: codes.InvalidArgument, wantField: "item.price_cents"},
		{name: "lower-case currency", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Currency = "usd" }), wantCode: codes.InvalidArgument, wantField: "item.currency"},
		{name: "negative available", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Available = -1 }), wantCode: codes.InvalidArgument, wantField: "item.available"},
		{name: "reserved ignored on input", ctx: admin(), item: with(func(i *inventoryv1.Item) { i.Sku = "sku-r"; i.Reserved = 50 }), wantCode: codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.client.UpsertItem(tc.ctx, &inventoryv1.UpsertItemRequest{Item: tc.item})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.wantCode)
			}
			if tc.wantField != "" {
				if f := fieldOf(err); f != tc.wantField {
					t.Fatalf("violation field = %q, want %q", f, tc.wantField)
				}
				if !strings.HasPrefix(status.Convert(err).Message(), tc.wantField+": ") {
					t.Fatalf("message %q does not name %s", status.Convert(err).Message(), tc.wantField)
				}
			}
			if err == nil {
				want := proto.Clone(tc.item).(*inventoryv1.Item)
				want.Reserved = 0
				if !proto.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
		})
	}
}

func TestGetItem(t *testing.T) {
	h := newHarness(t)
	h.put(t, apple())
	tests := []struct {
		sku      string
		wantCode codes.Code
	}{
		{"sku-apple", codes.OK},
		{"sku-missing", codes.NotFound},
		{"", codes.InvalidArgument},
		{"../etc", codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.sku, func(t *testing.T) {
			got, err := h.client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: tc.sku})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("code = %v, want %v", status.Code(err), tc.wantCode)
			}
			if err == nil && !proto.Equal(got, apple()) {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestListItemsPagination(t *testing.T) {
	h := newHarness(t)
	const n = 23
	want := make([]string, 0, n)
	for i := range n {
		sku := fmt.Sprintf("sku-%02d", i)
		want = append(want, sku)
		h.put(t, with(func(it *inventoryv1.Item) { it.Sku = sku }))
	}
	for _, size := range []int32{1, 5, 10, 23, 100} {
		t.Run(fmt.Sprintf("page size %d", size), func(t *testing.T) {
			var got []string
			tok := ""
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatal("pagination does not end")
				}
				resp, err := h.client.ListItems(context.Background(), &inventoryv1.ListItemsRequest{PageSize: size, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.GetItems()) > int(size) {
					t.Fatalf("page of %d items, size %d", len(resp.GetItems()), size)
				}
				for _, it := range resp.GetItems() {
					got = append(got, it.GetSku())
				}
				if tok = resp.GetNextPageToken(); tok == "" {
					break
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	t.Run("default size", func(t *testing.T) {
		resp, err := h.client.ListItems(context.Background(), &inventoryv1.ListItemsRequest{})
		if err != nil || len(resp.GetItems()) != n || resp.GetNextPageToken() != "" {
			t.Fatalf("got %d items, token %q, %v", len(resp.GetItems()), resp.GetNextPageToken(), err)
		}
	})
	for _, tc := range []struct {
		name  string
		req   *inventoryv1.ListItemsRequest
		field string
	}{
		{"negative size", &inventoryv1.ListItemsRequest{PageSize: -1}, "page_size"},
		{"size over max", &inventoryv1.ListItemsRequest{PageSize: 101}, "page_size"},
		{"garbage token", &inventoryv1.ListItemsRequest{PageToken: "!!!"}, "page_token"},
		{"token of a bad sku", &inventoryv1.ListItemsRequest{PageToken: "YSBi"}, "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.ListItems(context.Background(), tc.req)
			if status.Code(err) != codes.InvalidArgument || fieldOf(err) != tc.field {
				t.Fatalf("got %v, want INVALID_ARGUMENT on %s", err, tc.field)
			}
		})
	}
}

func TestRestartPersistence(t *testing.T) {
	path := t.TempDir() + "/inventory.db"
	store := openStore(t, path)
	if err := inventory.SeedDemo(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	h := startAt(t, path)
	resp, err := h.client.ListItems(context.Background(), &inventoryv1.ListItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	demo := inventory.DemoItems()
	if len(resp.GetItems()) != len(demo) {
		t.Fatalf("after restart: %d items, want %d", len(resp.GetItems()), len(demo))
	}
	got, err := h.client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "sku-apple"})
	if err != nil || got.GetPriceCents() != 120 || got.GetAvailable() != 100 || got.GetCurrency() != "USD" {
		t.Fatalf("sku-apple after restart: %v %v", got, err)
	}
	t.Run("seed leaves a non-empty catalogue alone", func(t *testing.T) {
		h.put(t, with(func(it *inventoryv1.Item) { it.Available = 3 }))
		if err := inventory.SeedDemo(context.Background(), h.store); err != nil {
			t.Fatal(err)
		}
		got, _ := h.client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "sku-apple"})
		if got.GetAvailable() != 3 {
			t.Fatalf("seed overwrote an item: available %d", got.GetAvailable())
		}
	})
}

// AddItem, which the seed uses, adds a missing item and never replaces one: a replica seeding
// late must not put back stock that orders took meanwhile.
func TestAddItemNeverReplaces(t *testing.T) {
	store := openStore(t, t.TempDir()+"/inventory.db")
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()
	apple := inventory.DemoItems()[0]
	taken := proto.Clone(apple).(*inventoryv1.Item)
	taken.Available = 7
	for _, step := range []struct {
		item *inventoryv1.Item
		want int32
	}{{taken, 7}, {apple, 7}} {
		if err := store.Update(ctx, func(tx inventory.Tx) error { return tx.AddItem(ctx, step.item) }); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetItem(ctx, apple.GetSku())
		if err != nil || got.GetAvailable() != step.want {
			t.Fatalf("after AddItem(available %d): %v, %v; want available %d", step.item.GetAvailable(), got, err, step.want)
		}
	}
}
