package telemetry

import (
	"context"
	"log/slog"
	"time"
)

// FlushTimeout bounds the flush of the spans still buffered when a binary exits.
const FlushTimeout = 5 * time.Second

// Start is Setup for a binary: it logs the exporter chosen when tracing is on, and returns
// stop, which flushes what is buffered (FlushTimeout at most, a failure logged); call it
// once everything traced has stopped.
func Start(ctx context.Context, opts Options, log *slog.Logger) (tr *Tracing, stop func(), err error) {
	tr, err = Setup(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	if tr.Enabled() {
		log.Info("tracing on", "exporter", tr.Exporter, "role", opts.Role)
	}
	return tr, func() {
		fctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
		defer cancel()
		if err := tr.Shutdown(fctx); err != nil {
			log.Warn("flushing traces", "role", opts.Role, "err", err)
		}
	}, nil
}
