package svcmain

import (
	"path/filepath"
	"testing"

	"github.com/acme/shopgate/services/storage"
)

func TestSource(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want storage.Source
	}{
		{"no url: the SQLite file under data", "", storage.Source{Path: filepath.Join("d", "order", "order.db")}},
		{"the service's schema by default", "postgres://shop@db:5432/shop",
			storage.Source{URL: "postgres://shop@db:5432/shop?search_path=shop_order", Path: filepath.Join("d", "order", "order.db")}},
		{"the url's search_path wins", "postgresql://db/shop?sslmode=disable&search_path=mine",
			storage.Source{URL: "postgresql://db/shop?sslmode=disable&search_path=mine", Path: filepath.Join("d", "order", "order.db")}},
		{"options left alone", "postgres://db/shop?options=-csearch_path%3Dx",
			storage.Source{URL: "postgres://db/shop?options=-csearch_path%3Dx", Path: filepath.Join("d", "order", "order.db")}},
		{"not postgres: left for opening to refuse", "mysql://db/shop",
			storage.Source{URL: "mysql://db/shop", Path: filepath.Join("d", "order", "order.db")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Data: "d", DatabaseURL: tc.url}
			if got := c.Source("order/order.db"); got != tc.want {
				t.Fatalf("Source = %+v, want %+v", got, tc.want)
			}
		})
	}
}
