package inventory

import (
	"context"
	"fmt"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
)

// DemoItems are the items SeedDemo adds.
func DemoItems() []*inventoryv1.Item {
	return []*inventoryv1.Item{
		{Sku: "sku-apple", Name: "Apple", PriceCents: 120, Currency: "USD", Available: 100},
		{Sku: "sku-banana", Name: "Banana", PriceCents: 80, Currency: "USD", Available: 150},
		{Sku: "sku-coffee", Name: "Coffee beans, 1 kg", PriceCents: 2450, Currency: "USD", Available: 40},
		{Sku: "sku-mug", Name: "Mug", PriceCents: 900, Currency: "USD", Available: 25},
		{Sku: "sku-limited", Name: "Limited edition poster", PriceCents: 5000, Currency: "USD", Available: 1},
	}
}

// SeedDemo adds DemoItems when the catalogue is empty (the dev stack calls it); a catalogue
// with any item is left alone. An item is only ever added, never replaced: replicas started
// together with -seed may both find the catalogue empty, and the later one must not put back
// the stock the first one's orders already took.
func SeedDemo(ctx context.Context, store Store) error {
	err := store.Update(ctx, func(tx Tx) error {
		items, err := store.ListItems(ctx, "", 1)
		if err != nil || len(items) > 0 {
			return err
		}
		for _, it := range DemoItems() {
			if err := tx.AddItem(ctx, it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seeding demo items: %w", err)
	}
	return nil
}
