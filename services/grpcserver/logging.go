package grpcserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
)

// healthService is the standard health service, whose successful checks are logged at DEBUG:
// probes every few seconds would drown the log.
const healthService = "grpc.health.v1.Health"

// The keys of the interceptor's fields that slogLogger reads beside the service and method:
// the code the interceptor always sets, and the duration loggingOptions sets.
const (
	codeKey     = "grpc.code"
	durationKey = "duration"
)

// loggingOptions make go-grpc-middleware's logging interceptor log one line per finished call,
// at ERROR for INTERNAL, UNKNOWN and DATA_LOSS and at INFO otherwise, with the duration as a
// time.Duration.
func loggingOptions() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(code codes.Code) logging.Level {
			switch code {
			case codes.Internal, codes.Unknown, codes.DataLoss:
				return logging.LevelError
			}
			return logging.LevelInfo
		}),
		logging.WithDurationField(func(d time.Duration) logging.Fields { return logging.Fields{durationKey, d} }),
	}
}

// slogLogger adapts log to go-grpc-middleware's logging.Logger. Of the interceptor's fields it
// keeps the call's method ("/pkg.Service/Method"), code and duration, in the line "rpc"; a
// successful health check goes down to DEBUG.
func slogLogger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, _ string, fields ...any) {
		var service, method, code string
		var duration time.Duration
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			switch key {
			case logging.ServiceFieldKey:
				service, _ = fields[i+1].(string)
			case logging.MethodFieldKey:
				method, _ = fields[i+1].(string)
			case codeKey:
				code, _ = fields[i+1].(string)
			case durationKey:
				duration, _ = fields[i+1].(time.Duration)
			}
		}
		level := slog.Level(lvl)
		if service == healthService && code == codes.OK.String() {
			level = slog.LevelDebug
		}
		if !log.Enabled(ctx, level) {
			return
		}
		log.LogAttrs(ctx, level, "rpc",
			slog.String("method", "/"+service+"/"+method),
			slog.String("code", code),
			slog.Duration("duration", duration))
	})
}
