// Package grpcserver builds the gRPC server every service runs on, with the same production
// settings everywhere, and holds the status helpers the services share.
//
// New returns a *grpc.Server with, outermost first, the interceptors of go-grpc-middleware v2:
// logging through an slog adapter (one line "rpc" per finished call with method, code and
// duration; ERROR for INTERNAL, UNKNOWN and DATA_LOSS, DEBUG for a successful health check,
// INFO otherwise), Prometheus metrics per call when given NewMetrics, and panic recovery (a
// panic becomes INTERNAL and is logged with its method and stack); a cap on concurrent streams
// per connection (grpc-go's default is unlimited), a keepalive enforcement policy, the standard
// health service (grpc.health.v1, for "" and every named service) and server reflection. Stop
// flips health to NOT_SERVING, drains with GracefulStop up to a timeout and then forces Stop.
//
// Metrics (NewMetrics, on a prometheus.Registerer the binary passes in; never the global one)
// are go-grpc-middleware's standard server metrics: grpc_server_started_total,
// grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code},
// grpc_server_msg_received_total, grpc_server_msg_sent_total and
// grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}.
//
// InvalidArgument, FieldViolations and Internal build the errors a service returns: field-level
// messages with an errdetails.BadRequest detail, and an INTERNAL status with a generic message
// (the real error is logged, never returned).
package grpcserver
