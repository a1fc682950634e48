// Package bench measures what the gateway costs per request, side by side in one run:
//
//	(a) direct:  a gRPC client calling the upstream
//	(b) bare:    grpc-gateway's ServeMux with its default options in front of the same upstream
//	(c) gateway: this gateway (server.New with its full chain) in front of the same upstream
//
// for the same GET (GET /v1/inventory/items/{sku}, public) and POST (POST /v1/orders, with a
// bearer token), over real loopback connections with a real HTTP client. The upstream is an
// in-memory fixture that answers at once, so that the figures are the cost of the path in front
// of it, not of a database. `make bench` runs the benchmarks and prints the ratios c/b and c/a
// (cmd/benchratio).
//
// BenchmarkPaired measures b and c in turns, in alternating blocks of requests within one loop,
// and reports their mean wall times and c/b: the figure the 1.10x target is checked on, since
// a slow spell of a shared machine then falls on both fronts alike.
package bench
