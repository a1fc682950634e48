package main

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/acme/shopgate/internal/telemetry"
)

// parts are the roles of the stack's parts, each traced as its own service.
var parts = []string{"gateway", "order", "payment", "inventory", "storefront"}

// startTracing sets up one tracing per part from the OTEL_* environment (internal/telemetry,
// off by default): its own TracerProvider, exporter and resource (service.name = the role),
// so that a trace shows the parts as separate services, as the separate binaries would. The
// providers are nil when tracing is off. stop flushes every part; call it last.
func startTracing(ctx context.Context, logger *slog.Logger) (map[string]trace.TracerProvider, func(), error) {
	tps := make(map[string]trace.TracerProvider, len(parts))
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, role := range parts {
		tr, s, err := telemetry.Start(ctx, telemetry.Options{Role: role, Part: true}, logger)
		if err != nil {
			stop()
			return nil, nil, err
		}
		stops = append(stops, s)
		tps[role] = tr.Provider
	}
	return tps, stop, nil
}
