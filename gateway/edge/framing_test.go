package edge

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestFramingVerdicts feeds request streams to the scanner, whole and one byte per read (heads,
// lengths and chunk sizes split across reads), and checks one verdict per head, in order.
func TestFramingVerdicts(t *testing.T) {
	const (
		get  = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
		both = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		// lookalike is a body that looks like the end of an ambiguous head and a request.
		lookalike = "x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/1.1\r\n\r\n"
	)
	hexLen := strconv.FormatInt(int64(len(lookalike)), 16)
	for _, tt := range []struct {
		name   string
		stream string
		want   []bool
	}{
		{"plain GET", get, []bool{false}},
		{"both fields", both, []bool{true}},
		{"both, any case, bare LF", "POST / HTTP/1.1\ncontent-LENGTH: 5\nTRANSFER-encoding: chunked\n\n0\n\n" + get, []bool{true, false}},
		{"only Content-Length", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" + get, []bool{false, false}},
		{"only Transfer-Encoding", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get, []bool{false, false}},
		{"names elsewhere than at a line's start", "GET /content-length: HTTP/1.1\r\nX-A: content-length: 1\r\nX-B: transfer-encoding: x\r\n\r\n", []bool{false}},
		{"a Content-Length body that looks like a head is skipped, the request after it scanned",
			"POST / HTTP/1.1\r\nContent-Length: " + strconv.Itoa(len(lookalike)) + "\r\n\r\n" + lookalike + both, []bool{false, true}},
		{"a chunked body that looks like a head is skipped, the request after it scanned",
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + hexLen + "\r\n" + lookalike + "\r\n0\r\n\r\n" + both, []bool{false, true}},
		{"chunk extensions, upper-case sizes, trailers",
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.ToUpper(hexLen) + ";name=\"v\" \r\n" + lookalike +
				"\r\n0;last\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n" + get + both, []bool{false, false, true}},
		{"pipelined GETs then both", get + get + both, []bool{false, false, true}},
		{"an invalid Content-Length stops the scan", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n" + both, []bool{false}},
		{"differing Content-Lengths stop the scan", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n" + both, []bool{false}},
		{"a malformed chunk size stops the scan", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + both, []bool{false}},
		{"chunk data not followed by CRLF stops the scan", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n" + both, []bool{false}},
		{"a header line longer than the scanner keeps", "GET / HTTP/1.1\r\nX-Long: " + strings.Repeat("a", 100) + "\r\n\r\n" + both, []bool{false, true}},
	} {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/byte by byte"
			}
			t.Run(name, func(t *testing.T) {
				var f framing
				if split {
					for i := range len(tt.stream) {
						f.read([]byte{tt.stream[i]})
					}
				} else {
					f.read([]byte(tt.stream))
				}
				if !slices.Equal(f.verdicts, tt.want) {
					t.Fatalf("verdicts %v, want %v", f.verdicts, tt.want)
				}
				for _, want := range tt.want {
					if got := f.next(); got != want {
						t.Fatalf("next() = %v, want %v", got, want)
					}
				}
				if f.next() {
					t.Fatal("next() with no head left: true")
				}
			})
		}
	}
}

// TestFramingLongPipeline: a connection whose heads are always scanned one ahead of the
// requests served gets every verdict in order, and the queue stays small.
func TestFramingLongPipeline(t *testing.T) {
	const get = "GET / HTTP/1.1\r\n\r\n"
	both := "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	var f framing
	f.read([]byte(get))
	for i := range 10_000 {
		next := get
		if i%7 == 0 {
			next = both
		}
		f.read([]byte(next))
		want := i > 0 && (i-1)%7 == 0
		if got := f.next(); got != want {
			t.Fatalf("request %d: verdict %v, want %v", i, got, want)
		}
	}
	if len(f.verdicts) > 128 {
		t.Fatalf("queue grew to %d", len(f.verdicts))
	}
}
