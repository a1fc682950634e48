// Package grpcserver builds the gRPC server every service runs on, with the same production
// settings everywhere, and holds the status helpers the services share.
//
// New returns a *grpc.Server with, outermost first: one slog line per call (method, code,
// duration), Prometheus metrics per call when given NewMetrics, panic recovery (a panic becomes
// INTERNAL and is logged with its stack); a cap on concurrent streams per connection (grpc-go's
// default is unlimited), a keepalive enforcement policy, the standard health service (grpc.health.v1, for "" and every named service) and
// server reflection. Stop flips health to NOT_SERVING, drains with GracefulStop up to a timeout
// and then forces Stop; Serve serves until a context ends and then stops that way.
//
// Metrics (NewMetrics, on a prometheus.Registerer the binary passes in; never the global one):
// grpc_server_handled_total{grpc_service, grpc_method, grpc_code} and
// grpc_server_handling_seconds{grpc_service, grpc_method}.
//
// InvalidArgument, FieldViolations and Internal build the errors a service returns: field-level
// messages with an errdetails.BadRequest detail, and an INTERNAL status with a generic message
// (the real error is logged, never returned).
package grpcserver
