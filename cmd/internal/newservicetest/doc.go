// Package newservicetest holds one test, and no code: that a team adds a service to the
// gateway with its proto and one upstream line in the gateway's YAML, and no gateway code.
//
// The test copies the module into a temporary folder, writes a new proto there
// (shop.echo.v1.EchoService, one GET route open to everyone), runs `make generate` with the
// repository's pinned tools (.tools, built by `make tools`), builds cmd/gateway and a small
// echo server, and shows the route listed by `gateway routes` and served through the gateway.
// It needs the tools: without them it is skipped with a message, and fails under CI=true.
package newservicetest
