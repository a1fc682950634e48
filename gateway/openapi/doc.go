// Package openapi builds the gateway's API reference, one OpenAPI 3.0 document for every served
// service, and serves it (GET /openapi.json) with Swagger UI (GET /docs).
//
// The document is built from what the gateway serves: the same service descriptors and the same
// resolved route table (gateway/routes, YAML overrides included) as the routing itself, once per
// configuration snapshot, so it cannot drift from the routes nor from their policy.
//
// What it holds, following grpc-gateway v2's rules:
//   - paths: the google.api.http templates ("/v1/orders/{id}:cancel"; a "{name=shelves/*}"
//     variable is one path parameter, its pattern in its description);
//   - parameters: the path variables; with body "*", the whole request message minus the path
//     fields as the JSON body; otherwise the body field (if any) as the body and every other
//     scalar, enum or repeated scalar field as a query parameter, nested messages with dotted
//     names ("filter.status");
//   - schemas in protojson's form: lowerCamelCase names, enums as their value names, 64-bit
//     integers as strings, well-known types as their JSON (Timestamp: a date-time string,
//     Duration: "1.5s", Struct/Value: any JSON, wrappers: their value); every message a component
//     under its full name, so recursive messages are $refs;
//   - server-streaming RPCs: 200 as application/x-ndjson ({"result": message} per line, a final
//     {"error": google.rpc.Status} when it fails after it began) and text/event-stream;
//   - policy: the bearer scheme (and the API-key scheme when keys are configured), `security` on
//     every route that takes a credential (an empty alternative when it is optional), the error
//     responses a route can give (google.rpc.Status), and the extensions x-shopgate-auth,
//     x-shopgate-roles, x-shopgate-rate-limit, x-shopgate-timeout, x-shopgate-idempotent and
//     x-shopgate-rpc;
//   - titles and descriptions from the protos' comments (Comments; protoc-gen-go drops them, so
//     they come from a FileDescriptorSet built with source info).
package openapi
