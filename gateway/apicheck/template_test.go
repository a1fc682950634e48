package apicheck

import "testing"

func TestTemplateOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/v1/items/{sku}", "/v1/items/{item_sku}", true},
		{"/v1/items/{id}", "/v1/items/special", true},
		{"/v1/items/special", "/v1/items/other", false},
		{"/v1/items/{id}", "/v1/items/{id}/parts", false},
		{"/v1/items/{id=**}", "/v1/items/a/b/c", true},
		{"/v1/items/{id=**}", "/v1/items", true}, // ** takes zero segments too
		{"/v1/{name=shelves/*}/books", "/v1/shelves/{shelf}/books", true},
		{"/v1/{name=shelves/*}/books", "/v1/shelves/{shelf}/{x}", true},
		{"/v1/{name=shelves/*}/books", "/v1/racks/{shelf}/books", false},
		{"/v1/orders/{id}:cancel", "/v1/orders/{order}:cancel", true},
		{"/v1/orders/{id}:cancel", "/v1/orders/{id}:watch", false},
		{"/v1/orders/{id}:cancel", "/v1/orders/{id}", false}, // but see absorbsVerbOf
		{"/v1/**", "/v2/x", false},
		{"/v1/*/a", "/v1/b/*", true},
		{"/v1/*", "/v1/*/*", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			a, err := parseTemplate(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			b, err := parseTemplate(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.overlaps(b); got != tt.want {
				t.Errorf("overlaps = %v, want %v", got, tt.want)
			}
			if got := b.overlaps(a); got != tt.want {
				t.Errorf("reversed: overlaps = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTemplateAbsorbsVerb(t *testing.T) {
	tests := []struct {
		verbless, verb string
		want           bool
	}{
		{"/v1/orders/{id}", "/v1/orders/{id}:cancel", true},
		{"/v1/{name=**}", "/v1/orders/{id}:cancel", true},
		{"/v1/orders/{id}", "/v1/items/{id}:cancel", false},
		{"/v1/orders/special", "/v1/orders/{id}:cancel", false}, // a literal cannot hold ":cancel"
		{"/v1/orders/{id}:watch", "/v1/orders/{id}:cancel", false},
		{"/v1/orders/{id}", "/v1/orders/{id}/items:cancel", false},
	}
	for _, tt := range tests {
		a, _ := parseTemplate(tt.verbless)
		b, _ := parseTemplate(tt.verb)
		if got := a.absorbsVerbOf(b); got != tt.want {
			t.Errorf("%s absorbs %s = %v, want %v", tt.verbless, tt.verb, got, tt.want)
		}
	}
}

func TestParseTemplateRefuses(t *testing.T) {
	for _, tpl := range []string{"v1/x", "/v1//x", "/v1/{id", "/v1/{=*}", "/v1/**/x", "/v1/x:"} {
		if _, err := parseTemplate(tpl); err == nil {
			t.Errorf("parseTemplate(%q) accepted it", tpl)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"/v1/items/{sku}", "/v1/{name=shelves/*}/books:get", "/v1/**"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := parseTemplate(s)
		if err != nil {
			return
		}
		if !tpl.overlaps(tpl) {
			t.Errorf("%q does not overlap itself", s)
		}
	})
}
