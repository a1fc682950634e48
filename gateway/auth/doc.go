// Package auth is the gateway's identity stage: it authenticates the caller of a routed request
// (a Bearer JWT or an X-API-Key), authorizes it against the route's roles (any-of) and stores the
// verified identity with identity.NewContext, from which the passport stage builds the metadata
// the services receive. A refused request is answered before its body is read: 401
// UNAUTHENTICATED with an RFC 6750 `WWW-Authenticate: Bearer realm="shop", ...` challenge, or 403
// PERMISSION_DENIED, both as google.rpc.Status JSON through gateway/httperror.
//
// # Configuration
//
// Config is the `auth:` section of the gateway's YAML; every field may be left out:
//
//	auth:
//	  leeway: 30s              # default 30s: clock skew allowed on exp, nbf, iat (0..10m)
//	  max_token_bytes: 8192    # default 8 KiB: longer Authorization values are refused unparsed
//	  cache:
//	    disabled: false        # default false
//	    size: 10000            # default 10000 verified tokens
//	    max_ttl: 5m            # default 5m; never past the token's exp or a key-set change
//	  sources:                 # default none: one entry per trusted issuer
//	    - name: idp            # default: the issuer; used in logs and metrics
//	      issuer: https://idp.example.com/        # required, unique; must equal `iss`
//	      audiences: [shop-api]                   # required; `aud` must contain one of them
//	      algorithms: [RS256, ES256, EdDSA]       # default these three; HS256 with secret_file
//	      jwks_url: https://idp.example.com/jwks.json  # https (http only for loopback)
//	      refresh_interval: 1h         # default 1h
//	      unknown_kid_interval: 5m     # default 5m: at most one fetch per interval on unknown kid
//	      fetch_timeout: 10s           # default 10s
//	      max_jwks_bytes: 1048576      # default 1 MiB
//	      roles_claim: roles           # default "roles": a JSON array of strings
//	      scope_claim: ""              # default off; "scope" adds its space-separated words
//	    - issuer: shop-dev             # the development key (internal/devkey)
//	      audiences: [shop-api]
//	      jwks_file: ./data/devkeys/jwks.json   # devkey writes it: public key with kid
//	    # other key sources: jwks_file: path (a JWKS document on disk); secret_file: path
//	    # (an HMAC secret of at least 32 bytes, the only source allowed HS256/384/512)
//	  api_keys:                # default none
//	    - name: billing-batch  # who holds it; for the reader only
//	      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  # hex SHA-256 of the key
//	      subject: svc-billing # required
//	      roles: [admin]       # default none
//
// Exactly one of jwks_url, jwks_file, key_files and secret_file is set per source; it picks the
// source's KeySource: a static one, read once at start, for the files; a JWKS one, fetched and
// refreshed through keyfunc, for the URL.
//
// # What a token must be
//
// At most MaxTokenBytes; read from the Authorization header only (never the query string);
// alone (two Authorization headers, or a Bearer token and an X-API-Key, are refused); three
// segments of strict base64url whose header and payload are JSON objects without duplicate
// member names at any depth (encoding/json would keep the last `sub` of two); no `crit`
// header; `kid`, when present, a printable string of at most 256 bytes. `jku`, `x5u`, `jwk` and
// `x5c` are never read. The payload's `iss` picks the source; its `alg` must be in that
// source's allow-list and fit the key's type (an RSA key never verifies ES256 or HS256). `exp`,
// `iss`, `aud` and a non-empty `sub` are required; `nbf` and `iat` are honoured; all three
// times with the leeway. Tokens of a JWKS URL must carry a kid; tokens of a static source may
// omit it only when the source holds exactly one key. The roles claim, when present, must be an
// array of strings.
//
// # Caching
//
// A verified token is cached under its SHA-256 with its identity, until the earliest of its
// exp, MaxTTL, and the next change of its source's key set; a client reusing its token pays a
// hash and a map lookup instead of a signature verification (see BenchmarkVerify).
//
// # API keys
//
// Only SHA-256 hashes are configured. A presented key is hashed and compared in constant time
// with every configured hash. A key is revoked by removing it from the configuration: the
// gateway builds a new Authenticator on reload.
package auth
