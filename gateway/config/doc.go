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
//	              watch_config true (reload when the file changes; false: SIGHUP only),
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
// Environment overrides (LoadEnv, ParseEnv; the gateway binary applies them at start, on every
// reload and in `gateway routes` and `gateway check -config`): a variable named EnvPrefix
// ("GATEWAY__") followed by the key path, levels separated by "__", any case, sets that
// setting as if the file said it, before the strict decode, so every check applies.
// GATEWAY__SERVER__READ_TIMEOUT=10s is server.read_timeout; a map key (an upstream, a route)
// matches the file's key with every character other than a letter or digit read as "_"
// (GATEWAY__ROUTES__SHOP_ORDER_V1_ORDERSERVICE__TIMEOUT=3s), or is created as written. A
// list of scalars takes a comma-separated value; a list of sections (auth.sources,
// auth.api_keys, upstream rules) cannot be set this way. An empty value is the default. A
// variable naming no setting is an error naming it. The Redis passwords are never in the file:
// GATEWAY_REDIS_PASSWORD (one underscore) holds them, as before, and
// GATEWAY_REDIS_SENTINEL_PASSWORD the sentinels' (redis.master_name). See internal/yamlenv.
//
// Everything but listen, upstreams, server and passport is reloadable (SIGHUP, or a change of
// the file while server.watch_config is on): a reload that
// changes those, or fails validation, leaves the running configuration unchanged. Route
// timeouts and retry policies (idempotent RPCs only) follow the route table of each reload;
// they are the upstream connections' service config, so a reload that changes them dials new
// connections.
package config
