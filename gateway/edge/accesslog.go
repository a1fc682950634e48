package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/acme/shopgate/gateway/metrics"
	"go.opentelemetry.io/otel/trace"
)

// AccessEntry is one access log line.
type AccessEntry struct {
	Time      time.Time
	Method    string
	Path      string
	Status    int
	Bytes     int64
	Duration  time.Duration
	RPC       string
	RequestID string
	ClientIP  netip.Addr
	// Pool is the upstream pool that served the request (State.Pool); the line has a "pool"
	// field only when it is set (a service with pools).
	Pool string
	// Trace is the request's span context (the trace stage's server span); the line has
	// "trace_id" and "span_id" fields only when it is valid (tracing on).
	Trace trace.SpanContext
}

// AccessLog writes one JSON-able slog line per request (method, path, status, bytes,
// duration, rpc, request_id, client_ip, and pool for a service with pools) and records the request metrics. logger nil (or not
// enabled at Info, e.g. slog.DiscardHandler): no log line and no formatting cost; m nil: no
// metrics; clientIP nil: the TCP peer. A request that panics is logged with status 500.
func AccessLog(logger *slog.Logger, m *metrics.Metrics, clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	var write func(context.Context, *AccessEntry)
	if logger != nil {
		write = func(ctx context.Context, e *AccessEntry) { // only when enabled (accessLog checks)
			// A record with no source position: Logger.LogAttrs would walk the stack
			// (runtime.Callers) on every request for a position nobody reads here.
			rec := slog.NewRecord(e.Time, slog.LevelInfo, "request", 0)
			attrs := [...]slog.Attr{
				slog.String("method", e.Method),
				slog.String("path", e.Path),
				slog.Int("status", e.Status),
				slog.Int64("bytes", e.Bytes),
				slog.Duration("duration", e.Duration),
				slog.String("rpc", e.RPC),
				slog.String("request_id", e.RequestID),
				slog.String("client_ip", e.ClientIP.String()),
				slog.String("pool", e.Pool),
				{}, {}, // trace_id, span_id
			}
			n := len(attrs) - 3
			if e.Pool != "" {
				n++ // no pool field for a service without pools
			}
			if e.Trace.IsValid() {
				attrs[n] = slog.String("trace_id", e.Trace.TraceID().String())
				attrs[n+1] = slog.String("span_id", e.Trace.SpanID().String())
				n += 2
			}
			rec.AddAttrs(attrs[:n]...) // one call: a second one would grow the record's slice
			_ = logger.Handler().Handle(ctx, rec)
		}
	}
	enabled := func(ctx context.Context) bool { return logger != nil && logger.Enabled(ctx, slog.LevelInfo) }
	return accessLog(enabled, write, m, clientIP)
}

// AccessLogJSON is AccessLog writing its lines to w with its own encoder instead of a slog
// handler: the same fields, names and formats as slog.JSONHandler's ("time" in RFC 3339 with
// nanoseconds, "level":"INFO", "msg":"request", "duration" in nanoseconds), one Write per line, serialized,
// at a fraction of a slog record's cost. w nil: no log line.
func AccessLogJSON(w io.Writer, m *metrics.Metrics, clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	if w == nil {
		return AccessLog(nil, m, clientIP)
	}
	var mu sync.Mutex
	write := func(_ context.Context, e *AccessEntry) {
		bp := linePool.Get().(*[]byte)
		b := AppendAccessJSON((*bp)[:0], e)
		mu.Lock()
		_, _ = w.Write(b)
		mu.Unlock()
		*bp = b
		linePool.Put(bp)
	}
	return accessLog(func(context.Context) bool { return true }, write, m, clientIP)
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func accessLog(enabled func(context.Context) bool, write func(context.Context, *AccessEntry), m *metrics.Metrics, clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	if clientIP == nil {
		clientIP = peerIP
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, w, r := ensure(w, r)
			start := time.Now()
			logging := write != nil && enabled(r.Context())
			var ip netip.Addr
			if logging {
				ip = clientIP(r) // before the route stage drops forwarding headers
			}
			method, path := r.Method, r.URL.Path
			if m != nil {
				m.Start()
			}
			completed := false
			defer func() {
				code := s.rec.status
				if !completed && code == 0 {
					code = http.StatusInternalServerError // panicking: Recover answers 500
				}
				elapsed := time.Since(start)
				if m != nil {
					ctx := context.Background() // no span to look for
					if s.Traced {
						ctx = r.Context()
					}
					m.Done(ctx, method, s.RoutePath(), code, elapsed)
				}
				if logging {
					e := AccessEntry{Time: time.Now(), Method: method, Path: path, Status: code, Bytes: s.rec.bytes,
						Duration: elapsed, RPC: s.RPC, RequestID: s.RequestID, ClientIP: ip, Pool: s.Pool,
						Trace: spanContext(s, r)}
					write(r.Context(), &e)
				}
			}()
			next.ServeHTTP(w, r)
			completed = true
		})
	}
}

// AppendAccessJSON appends e to b as one JSON line, in slog.JSONHandler's format.
func AppendAccessJSON(b []byte, e *AccessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(e.Duration), 10)
	b = append(b, `,"rpc":`...)
	b = appendJSONString(b, e.RPC)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, e.RequestID)
	b = append(b, `,"client_ip":"`...)
	if e.ClientIP.IsValid() {
		b = e.ClientIP.AppendTo(b)
	} else {
		b = append(b, "invalid IP"...) // netip.Addr{}.String(), as the slog line has it
	}
	b = append(b, '"')
	if e.Pool != "" {
		b = append(b, `,"pool":`...)
		b = appendJSONString(b, e.Pool)
	}
	if e.Trace.IsValid() {
		tid, sid := e.Trace.TraceID(), e.Trace.SpanID()
		b = append(b, `,"trace_id":"`...)
		b = appendHex(b, tid[:])
		b = append(b, `","span_id":"`...)
		b = appendHex(b, sid[:])
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// appendHex appends p in lower-case hex, as trace ids are written.
func appendHex(b, p []byte) []byte {
	for _, c := range p {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped (as encoding/json and
// slog do).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func peerIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// spanContext is the request's span context when the trace stage traced it, else none.
func spanContext(s *State, r *http.Request) trace.SpanContext {
	if !s.Traced {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(r.Context())
}
