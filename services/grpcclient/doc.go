// Package grpcclient dials the shop's services from another service (orderd prices orders
// through inventory; storefrontd composes order, inventory and payment): one client connection
// per service, balanced round robin over every instance, skipping instances whose gRPC health
// service reports NOT_SERVING (grpc.health.v1), with keepalive pings that take a frozen
// instance out of the rotation.
//
// An address is one host:port, a comma-separated list of them (a static list of instances), or
// a gRPC target with a scheme, such as dns:///inventory:9103 (every address the name resolves
// to). Dial starts no goroutine of its own beyond grpc-go's; Close the connection.
package grpcclient
