// Package config decodes and validates the gateway's YAML file.
//
// Decoding is strict: an unknown key or a value of the wrong type stops start-up (or a reload)
// with a message naming the key and its line. Every field has a default, stated on the field; a
// zero value in the file means "the default". example.yaml in this folder is a complete file
// (a test parses it).
//
// The sections:
//
//	listen        HTTP listen address. Default 127.0.0.1:8080. Not reloadable.
//	upstreams     full gRPC service name -> {addresses: [host:port, ...]}; each service gets one
//	              gRPC connection, round_robin over its addresses with gRPC health checking.
//	              Only listed services are served. Not reloadable.
//	server        read_header_timeout 5s, read_timeout 30s, write_timeout 0 (none: streams),
//	              idle_timeout 120s, max_header_bytes 65536, shutdown_timeout 20s,
//	              drain_delay 5s (SIGTERM: /readyz fails this long while serving, then the
//	              listener closes; negative: none), admin_listen "" (host:port: /metrics,
//	              /readyz and /admin/* move there). Not reloadable.
//	limits        max_body_bytes 1048576 (1 MiB): larger bodies get 413.
//	defaults      the policy of a route nothing else configures: timeout 10s,
//	              rate_limit {requests: 100, per: 60s, burst: 100}.
//	routes        overrides keyed "pkg.Service" or "pkg.Service/Method": auth (required |
//	              optional | none), roles, rate_limit, timeout, idempotent, fallback
//	              {http_status, json_body}, allow_cidrs, deny_cidrs. A key naming no served
//	              service or RPC is an error (checked by gateway/routes).
//	auth, rate_limiting, breaker, retry, cors, ip_rules, client_ip
//	              the policy stages' own sections: see the Config type of gateway/auth,
//	              gateway/ratelimit, gateway/breaker, gateway/retry, gateway/cors,
//	              gateway/ipfilter and gateway/clientip.
//	passport      key_dir (the gateway's Ed25519 signing keys; default: a key made in memory),
//	              ttl 5m, cache_size 10000, key_check_interval 10s: see gateway/passport.
//	              Not reloadable; the key folder is watched.
//	docs          enabled true: GET /openapi.json and GET /docs (gateway/openapi); false: 404.
//
// Policy precedence, weakest first: built-in safe default (auth required, the default rate
// limit and timeout, idempotent only for GET) < defaults < the proto's gateway.v1.service_policy
// < the proto's gateway.v1.policy < routes["pkg.Service"] < routes["pkg.Service/Method"].
// `gateway routes -config file.yaml` prints the resolved table.
//
// Everything but listen, upstreams, server and passport is reloadable (SIGHUP): a reload that
// changes those, or fails validation, leaves the running configuration unchanged. Route
// timeouts and retry policies (idempotent RPCs only) follow the route table of each reload;
// they are the upstream connections' service config, so a reload that changes them dials new
// connections.
package config
