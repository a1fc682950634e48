package edge

import (
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/acme/shopgate/gateway/metrics"
)

// AccessLog writes one JSON-able slog line per request (method, path, status, bytes,
// duration, rpc, request_id, client_ip) and records the request metrics. logger nil (or not
// enabled at Info, e.g. slog.DiscardHandler): no log line and no formatting cost; m nil: no
// metrics; clientIP nil: the TCP peer. A request that panics is logged with status 500.
func AccessLog(logger *slog.Logger, m *metrics.Metrics, clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	if clientIP == nil {
		clientIP = peerIP
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, w, r := ensure(w, r)
			start := time.Now()
			logging := logger != nil && logger.Enabled(r.Context(), slog.LevelInfo)
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
					m.Done(s.RPC, code, elapsed)
				}
				if logging {
					// A record with no source position: Logger.LogAttrs would walk the stack
					// (runtime.Callers) on every request for a position nobody reads here.
					rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
					rec.AddAttrs(
						slog.String("method", method),
						slog.String("path", path),
						slog.Int("status", code),
						slog.Int64("bytes", s.rec.bytes),
						slog.Duration("duration", elapsed),
						slog.String("rpc", s.RPC),
						slog.String("request_id", s.RequestID),
						slog.String("client_ip", ip.String()))
					_ = logger.Handler().Handle(r.Context(), rec)
				}
			}()
			next.ServeHTTP(w, r)
			completed = true
		})
	}
}

func peerIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
