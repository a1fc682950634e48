package sse

import (
	"strings"
	"testing"
)

func TestAccepts(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"text/event-stream"}, true},
		{[]string{"Text/Event-Stream"}, true},
		{[]string{"text/event-stream; charset=utf-8"}, true},
		{[]string{"text/event-stream;q=0"}, false},
		{[]string{"text/event-stream; q=0.000"}, false},
		{[]string{"text/event-stream;q=0.001"}, true},
		{[]string{"text/event-stream;q=1.000"}, true},
		{[]string{"text/event-stream;q=1.5"}, false},    // not a qvalue: skipped
		{[]string{"text/event-stream;q=0.0001"}, false}, // four decimals: skipped
		{[]string{"text/event-stream;q=abc"}, false},
		{[]string{"*/*"}, false},
		{[]string{"text/*"}, false},
		{[]string{"application/json"}, false},
		{[]string{"application/json, text/event-stream"}, true},
		{[]string{"application/json;q=0.9, text/event-stream;q=0.5"}, false},
		{[]string{"application/x-ndjson;q=0.5, text/event-stream;q=0.9"}, true},
		{[]string{"application/json", "text/event-stream"}, true}, // two header lines
		{[]string{"text/event-stream;q=0, text/event-stream;q=0.5"}, true},
		{[]string{"text/event-stream, application/json"}, true}, // a tie: events
		{[]string{"/event-stream, text/"}, false},
		{[]string{",,, ;;q=1"}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.accept, "|"), func(t *testing.T) {
			if got := Accepts(tt.accept); got != tt.want {
				t.Errorf("Accepts(%q) = %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}

func TestQvalue(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"1", 1000, true}, {"0.5", 500, true}, {"0.25", 250, true}, {"0.125", 125, true},
		{"1.0", 1000, true}, {"1.000", 1000, true}, {"1.001", 0, false}, {"2", 0, false}, {"", 0, false},
		{".5", 0, false}, {"0.", 0, true}, {"0,5", 0, false}, {"-0", 0, false},
	}
	for _, tt := range tests {
		got, ok := qvalue(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("qvalue(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzAccepts: any header parses without panic; events are chosen only when the header names
// text/event-stream, never for a header whose every range has q=0, and adding ", */*" (a
// wildcard) never changes the choice.
func FuzzAccepts(f *testing.F) {
	for _, s := range []string{"text/event-stream", "text/event-stream;q=0", "application/json;q=0.9, text/event-stream;q=0.5", "*/*", "text/event-stream;q=1.5", ";q=", ",", "a/b;q=0.1;q=0.9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Accepts([]string{s})
		if got && !strings.Contains(strings.ToLower(s), MIME) {
			t.Fatalf("Accepts(%q) chose events without naming them", s)
		}
		if got != Accepts([]string{s + ", */*"}) && !strings.HasSuffix(strings.TrimSpace(s), ";") {
			t.Fatalf("a wildcard changed the choice for %q", s)
		}
		for v := range strings.SplitSeq(s, ",") {
			if typ, q, ok := mediaRange(v); ok && (q < 0 || q > 1000 || !strings.Contains(typ, "/")) {
				t.Fatalf("mediaRange(%q) = %q, %d", v, typ, q)
			}
		}
	})
}
