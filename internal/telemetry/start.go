package telemetry

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
)

// FlushTimeout bounds the flush of the spans still buffered when a binary exits.
const FlushTimeout = 5 * time.Second

// Start is Setup for a binary: it logs the exporter chosen when tracing is on (and from then
// on the SDK's own errors, through the process-wide otel error handler), and returns
// stop, which flushes what is buffered (FlushTimeout at most, a failure logged); call it
// once everything traced has stopped.
func Start(ctx context.Context, opts Options, log *slog.Logger) (tr *Tracing, stop func(), err error) {
	tr, err = Setup(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	if tr.Enabled() {
		log.Info("tracing on", "exporter", tr.Exporter, "role", opts.Role)
		// The SDK's own failures (an unreachable collector: one per export) as JSON log lines
		// rather than its default plain-text logger's.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("opentelemetry", "err", err) }))
	}
	return tr, func() {
		fctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
		defer cancel()
		if err := tr.Shutdown(fctx); err != nil {
			log.Warn("flushing traces", "role", opts.Role, "err", err)
		}
	}, nil
}
