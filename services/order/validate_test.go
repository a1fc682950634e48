package order

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestValidKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"k", true},
		{"a b~!", true},
		{strings.Repeat("k", 255), true},
		{"", false},
		{strings.Repeat("k", 256), false},
		{"tab\there", false},
		{"del\x7f", false},
		{"é", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if got := validKey(tc.key); got != tc.want {
				t.Fatalf("validKey(%q) = %v", tc.key, got)
			}
		})
	}
}

func FuzzDecodePageToken(f *testing.F) {
	for _, seed := range []string{"", encodePageToken(Cursor{CreateTime: 1767323045000000000, ID: "0123abcd"}), "%%%", "MTIz", "LTEuYQ", "MS4", "++++"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := decodePageToken(tok)
		if err != nil || c == nil {
			return
		}
		if c.CreateTime < 0 || !validID(c.ID) {
			t.Fatalf("token %q decoded to invalid cursor %+v", tok, c)
		}
		again, err := decodePageToken(encodePageToken(*c))
		if err != nil || *again != *c {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, seed := range []string{"k", "", "a b", "tab\t", "é", strings.Repeat("x", 256)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, err := idempotencyKey(metadata.Pairs(MDIdempotencyKey, key))
		printable := len(key) >= 1 && len(key) <= MaxKeyLength
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				printable = false
			}
		}
		if printable != (err == nil) {
			t.Fatalf("key %q: accepted=%v, printable=%v", key, err == nil, printable)
		}
		if err == nil && got != key {
			t.Fatalf("key %q came back as %q", key, got)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("key %q: %v", key, err)
		}
	})
}
