package edge

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/acme/shopgate/gateway/httperror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recover turns a panic below it into a 500 google.rpc.Status (when nothing was written yet),
// logged with its stack; the connection stays usable. http.ErrAbortHandler is re-panicked: it is
// net/http's way to abort a response on purpose. logger nil: slog.Default().
func Recover(logger *slog.Logger) func(http.Handler) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, w, r := ensure(w, r)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.Any("panic", v), slog.String("request_id", s.RequestID),
					slog.String("method", r.Method), slog.String("path", r.URL.Path),
					slog.String("stack", string(debug.Stack())))
				if s.rec.status == 0 {
					httperror.Write(w, status.New(codes.Internal, httperror.GenericInternalMessage))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
