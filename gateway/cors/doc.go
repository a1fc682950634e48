// Package cors answers CORS preflights at the edge and adds the CORS response headers to the
// requests of allowed origins.
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is always answered here
// with 204 No Content and never reaches the upstream. When the origin is allowed and the
// requested method and headers are among the allowed ones, the answer carries
// Access-Control-Allow-Origin, -Allow-Methods, -Allow-Headers, -Max-Age (and -Allow-Credentials
// when configured). Otherwise it carries no Access-Control-* header at all, so the browser blocks
// the request: this is Envoy's behaviour with forward_not_matching_preflights: false (answered
// locally, no CORS headers); we chose 204-without-headers over 403 so that a refusal looks the
// same as an unknown origin and says nothing about the configuration.
//
// Any other request from an allowed origin gets Access-Control-Allow-Origin, -Expose-Headers and
// -Allow-Credentials (when configured). A request from a disallowed origin passes unchanged
// (CORS is enforced by browsers; the gateway's authentication applies as for every request).
// Every response of an enabled stage carries `Vary: Origin`, so caches never serve one origin's
// headers to another.
//
// Config example (YAML section `cors`):
//
//	cors:
//	  allowed_origins: ["https://shop.example.com", "https://admin.example.com"]  # or ["*"]
//	  allowed_methods: [GET, POST, PUT, DELETE]
//	  allowed_headers: [Authorization, Content-Type, Idempotency-Key]
//	  exposed_headers: [X-Trace-Id]
//	  allow_credentials: true     # refused together with "*"
//	  max_age: 10m
//
// Defaults: AllowedOrigins empty (CORS off: preflights answered 204 without CORS headers, no
// headers added); AllowedMethods GET, HEAD, POST, PUT, PATCH, DELETE; AllowedHeaders
// Authorization, Content-Type, Idempotency-Key, X-Request-Id, X-Api-Key; exposed headers always
// include X-Request-Id, RateLimit, RateLimit-Policy and Retry-After, plus ExposedHeaders;
// AllowCredentials false; MaxAge 10 minutes (at most 24h).
package cors
