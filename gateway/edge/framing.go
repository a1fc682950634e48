package edge

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// framing watches the requests read from one connection for a head that carries both
// Content-Length and Transfer-Encoding. net/http serves such a request by Transfer-Encoding and
// drops Content-Length from its header (RFC 9112 section 6.3), so no handler can see it; but a
// proxy in front that framed the message by Content-Length disagrees about where the next
// request starts (request smuggling), and RFC 9112 section 6.1 requires the connection to be
// closed after answering. The verdicts are queued per request head, in order, and
// AmbiguousFraming takes them in the same order, one per request served.
//
// The scanner follows the bytes as net/http reads them: each head line by line, looking for the
// two field names (case-insensitively, at the start of a line), then the body by its framing,
// without looking into it: chunked (chunk sizes, data skipped, trailer lines) when the head had
// Transfer-Encoding (net/http accepts only chunked), else the Content-Length's bytes, else none.
// So every request pipelined behind another is scanned too, whatever the bodies hold. What
// net/http refuses itself (a Content-Length that does not parse, differing ones, a malformed
// chunk) stops the scan: net/http answers 400 and closes the connection.
type framing struct {
	mu       sync.Mutex
	state    framingState
	bodyLeft uint64 // framingBody, framingChunkData: bytes still to skip

	line    [64]byte // the current line's start, lower-cased; long enough for both names and a length
	lineLen int      // the current line's length so far (may exceed len(line))
	started bool     // the request line is behind us
	hasCL   bool
	hasTE   bool
	clValid bool
	cl      uint64

	verdicts []bool // one per head scanned, from taken on not yet taken: true when it had both fields
	taken    int
}

type framingState uint8

const (
	framingHead      framingState = iota // a request head's lines
	framingBody                          // bodyLeft bytes of a Content-Length body
	framingChunkSize                     // a chunk-size line
	framingChunkData                     // bodyLeft bytes of a chunk
	framingChunkEnd                      // the empty line after a chunk's data
	framingTrailer                       // the trailer lines after the last chunk
	framingOff                           // lost: no more scanning on this connection
)

// maxQueuedVerdicts bounds the heads scanned ahead of the requests served. net/http reads at
// most its 4 KiB buffer ahead, so this is never reached by real pipelining; beyond it the
// scanner stops rather than grow.
const maxQueuedVerdicts = 1024

// read scans p, just read from the connection.
func (f *framing) read(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(p) > 0 {
		switch f.state {
		case framingOff:
			return
		case framingBody, framingChunkData:
			n := min(uint64(len(p)), f.bodyLeft)
			f.bodyLeft -= n
			p = p[n:]
			switch {
			case f.bodyLeft > 0: // p is used up
			case f.state == framingBody:
				f.state = framingHead
			default:
				f.state = framingChunkEnd
			}
		default: // a line
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.take(p)
				return
			}
			f.take(p[:i])
			p = p[i+1:]
			f.endLine()
		}
	}
}

// take adds b (part of the current line, without its '\n') to the line, keeping its start.
func (f *framing) take(b []byte) {
	if f.lineLen < len(f.line) {
		kept := f.line[f.lineLen:]
		kept = kept[:copy(kept, b)]
		for i, c := range kept {
			if 'A' <= c && c <= 'Z' {
				kept[i] = c + 'a' - 'A'
			}
		}
	}
	f.lineLen += len(b)
}

// endLine handles the current line, which just ended with '\n'.
func (f *framing) endLine() {
	line := f.line[:min(f.lineLen, len(f.line))]
	long := f.lineLen > len(f.line)
	f.lineLen = 0
	line = bytes.TrimSuffix(line, []byte("\r"))
	empty := len(line) == 0 && !long
	switch f.state {
	case framingHead:
		f.headLine(line, long, empty)
	case framingChunkSize:
		if i := bytes.IndexByte(line, ';'); i >= 0 { // a chunk extension
			line, long = line[:i], false
		}
		size, err := strconv.ParseUint(string(bytes.TrimRight(line, " \t")), 16, 63)
		switch {
		case err != nil || long:
			f.state = framingOff
		case size == 0:
			f.state = framingTrailer
		default:
			f.state, f.bodyLeft = framingChunkData, size
		}
	case framingChunkEnd:
		if f.state = framingChunkSize; !empty {
			f.state = framingOff
		}
	case framingTrailer:
		if empty {
			f.state = framingHead
		}
	}
}

// headLine handles a line of a request head.
func (f *framing) headLine(line []byte, long, empty bool) {
	switch {
	case !f.started:
		f.started = true // the request line
	case empty:
		f.endHead()
	case bytes.HasPrefix(line, []byte("content-length:")):
		v := bytes.Trim(line[len("content-length:"):], " \t")
		n, err := strconv.ParseUint(string(v), 10, 63)
		if !f.hasCL {
			f.cl, f.clValid = n, err == nil && !long
		} else if err != nil || n != f.cl || long {
			f.clValid = false // net/http refuses differing lengths
		}
		f.hasCL = true
	case bytes.HasPrefix(line, []byte("transfer-encoding:")):
		f.hasTE = true
	}
}

// endHead queues the verdict of the head that just ended and moves on to its body.
func (f *framing) endHead() {
	if len(f.verdicts)-f.taken >= maxQueuedVerdicts {
		f.state = framingOff
		return
	}
	f.verdicts = append(f.verdicts, f.hasCL && f.hasTE)
	switch {
	case f.hasTE: // net/http frames by it, and accepts only chunked
		f.state = framingChunkSize
	case !f.hasCL:
		f.state = framingHead
	case !f.clValid:
		f.state = framingOff
	case f.cl > 0:
		f.state, f.bodyLeft = framingBody, f.cl
	default:
		f.state = framingHead
	}
	f.started, f.hasCL, f.hasTE, f.clValid, f.cl = false, false, false, false, 0
}

// next takes the verdict of the oldest head not yet taken; false when none is queued.
func (f *framing) next() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.taken == len(f.verdicts) {
		return false
	}
	v := f.verdicts[f.taken]
	f.taken++
	switch {
	case f.taken == len(f.verdicts): // the usual case: nothing queued ahead
		f.verdicts, f.taken = f.verdicts[:0], 0
	case f.taken >= 64 && 2*f.taken >= len(f.verdicts): // a long pipeline: keep the queue small
		f.verdicts, f.taken = f.verdicts[:copy(f.verdicts, f.verdicts[f.taken:])], 0
	}
	return v
}

type framingKey struct{}

// ConnContext is for http.Server.ConnContext: it makes the framing verdicts of a connection
// from Listener available to AmbiguousFraming. It finds that connection inside wrappers that
// have a NetConn method (as tls.Conn and gateway/connlimit's connections do).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		if sc, ok := c.(*statusConn); ok {
			return context.WithValue(ctx, framingKey{}, &sc.framing)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return ctx
}

// AmbiguousFraming reports whether r's head carried both Content-Length and Transfer-Encoding.
// It takes the verdict of the connection's next request head, so the gateway calls it exactly
// once per request, first of all; false for a connection not from Listener, and for HTTP/2
// (served over server.tls), which has no Transfer-Encoding framing: the scanner reads HTTP/2's
// binary frames there, and a body's bytes could look like a head.
func AmbiguousFraming(r *http.Request) bool {
	if r.ProtoMajor >= 2 {
		return false
	}
	f, ok := r.Context().Value(framingKey{}).(*framing)
	return ok && f.next()
}
