package httpcache

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
)

func TestETag(t *testing.T) {
	a, b := ETag([]byte(`{"id":"o-1"}`)), ETag([]byte(`{"id":"o-2"}`))
	if a == b {
		t.Fatalf("two bodies, one tag %s", a)
	}
	if a != ETag([]byte(`{"id":"o-1"}`)) {
		t.Error("the tag of one body changed")
	}
	for _, tag := range []string{a, b, ETag(nil)} {
		if len(tag) != 18 || tag[0] != '"' || tag[17] != '"' || strings.HasPrefix(tag, "W/") {
			t.Errorf("tag %s is not a quoted strong tag of 16 hex digits", tag)
		}
	}
}

func TestNoneMatch(t *testing.T) {
	const tag = `"0123456789abcdef"`
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{tag}, true},
		{[]string{`W/` + tag}, true}, // weak comparison
		{[]string{`"other", ` + tag}, true},
		{[]string{`"other"`, tag}, true}, // two header lines
		{[]string{`"other"`}, false},
		{[]string{`*`}, true},
		{[]string{` * `}, true},
		{[]string{`*, "x"`}, true},
		{[]string{`0123456789abcdef`}, false}, // unquoted
		{[]string{`"0123456789abcdef`}, false},
		{[]string{`W/"other",W/` + tag}, true},
		{[]string{`"a b", ` + tag}, false}, // a space is not etagc: the list is malformed from there
		{[]string{``}, false},
		{[]string{`,,,`}, false},
		{[]string{`""`}, false},
	}
	for _, tt := range tests {
		if got := NoneMatch(tt.values, tag); got != tt.want {
			t.Errorf("NoneMatch(%q) = %v, want %v", tt.values, got, tt.want)
		}
	}
}

// FuzzNoneMatch: any If-None-Match parses without panic; a header made of the tag alone, or
// of anything followed by ", " and the tag (when what precedes parses), matches.
func FuzzNoneMatch(f *testing.F) {
	for _, s := range []string{`"a"`, `W/"a", "b"`, `*`, `"a`, `W/`, `, ,"x"`, "\"\x80\""} {
		f.Add(s)
	}
	tag := ETag([]byte("body"))
	f.Fuzz(func(t *testing.T, s string) {
		got := NoneMatch([]string{s}, tag)
		if got && !strings.Contains(s, tag[1:17]) && !strings.Contains(s, "*") {
			t.Fatalf("%q matched %s without naming it", s, tag)
		}
		if !NoneMatch([]string{s, tag}, tag) {
			t.Fatalf("the tag on its own line did not match after %q", s)
		}
	})
}

func TestResources(t *testing.T) {
	tests := []struct {
		path string
		want []string
	}{
		{"/v1/orders/o-1:cancel", []string{"/v1/orders/o-1", "/v1/orders"}},
		{"/v1/orders/o-1", []string{"/v1/orders/o-1", "/v1/orders"}},
		{"/v1/orders", []string{"/v1/orders", "/v1"}},
		{"/v1/inventory/items/sku-1:reserve", []string{"/v1/inventory/items/sku-1", "/v1/inventory/items"}},
		{"/v1/inventory/items/", []string{"/v1/inventory/items", "/v1/inventory"}},
		{"/v1", []string{"/v1"}},
		{"/", []string{"/"}},
	}
	for _, tt := range tests {
		got := Resources(tt.path)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("Resources(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	if Resource("/v1/orders/o-1:watch") != "/v1/orders/o-1" {
		t.Error("the GET of a custom verb is not its resource's")
	}
}

func TestCacheControl(t *testing.T) {
	tests := []struct {
		name string
		rt   *policy.Route
		want string
	}{
		{"no route", nil, Private},
		{"required", &policy.Route{Policy: policy.Policy{Auth: policy.AuthRequired}}, Private},
		{"optional", &policy.Route{Policy: policy.Policy{Auth: policy.AuthOptional, Cache: policy.Cache{MaxAge: time.Minute}}}, Private},
		{"public, default", &policy.Route{Policy: policy.Policy{Auth: policy.AuthNone}}, PublicRevalidate},
		{"public, max_age", &policy.Route{Policy: policy.Policy{Auth: policy.AuthNone, Cache: policy.Cache{MaxAge: 90 * time.Second}}}, "public, max-age=90"},
	}
	for _, tt := range tests {
		if got := CacheControl(tt.rt); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestETagValue(t *testing.T) {
	for _, body := range []string{"", "a", `{"id":"o-1","totalCents":"1234"}`} {
		if v := etagValue([]byte(body)); len(v) != 1 || v[0] != ETag([]byte(body)) {
			t.Errorf("etagValue(%q) = %q, want [%s]", body, v, ETag([]byte(body)))
		}
	}
	if testing.AllocsPerRun(100, func() { _ = etagValue([]byte("body")) }) > 1 {
		t.Error("etagValue allocates more than once")
	}
}
