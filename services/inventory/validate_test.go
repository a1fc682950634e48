package inventory

import "testing"

func FuzzDecodePageToken(f *testing.F) {
	for _, seed := range []string{"", encodePageToken("sku-apple"), "!!!", "YSBi", encodePageToken("a\x00b"), "====", "c2t1LWFwcGxl"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		sku, err := decodePageToken(tok)
		if err != nil {
			return
		}
		if tok == "" {
			if sku != "" {
				t.Fatalf("empty token gave %q", sku)
			}
			return
		}
		if !ValidSKU(sku) {
			t.Fatalf("token %q decoded to invalid sku %q", tok, sku)
		}
		if again, err := decodePageToken(encodePageToken(sku)); err != nil || again != sku {
			t.Fatalf("round trip of %q: %q %v", sku, again, err)
		}
	})
}
