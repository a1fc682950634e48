package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// The defaults of Config. Each applies when its field is zero.
const (
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxTokenBytes caps the Authorization header value; longer tokens are refused unread.
	DefaultMaxTokenBytes = 8 << 10
	// DefaultRolesClaim is the claim that holds a JSON array of role names.
	DefaultRolesClaim = "roles"
	// DefaultCacheSize is how many verified tokens the cache keeps.
	DefaultCacheSize = 10_000
	// DefaultCacheMaxTTL bounds how long a verified token is served from the cache (never past
	// its exp).
	DefaultCacheMaxTTL = 5 * time.Minute
	// DefaultRefreshInterval is how often a JWKS URL is fetched again.
	DefaultRefreshInterval = time.Hour
	// DefaultUnknownKIDInterval is the minimum time between two fetches of a JWKS URL caused by
	// a token whose kid is not in the set.
	DefaultUnknownKIDInterval = 5 * time.Minute
	// DefaultFetchTimeout bounds one JWKS fetch.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxJWKSBytes caps a JWKS response body; a larger one fails the fetch and the
	// previous keys stay in use.
	DefaultMaxJWKSBytes = 1 << 20
	// MaxAPIKeyBytes caps an X-API-Key header value; longer values are refused unhashed.
	MaxAPIKeyBytes = 256
)

// Config is the `auth:` section of the gateway's YAML. The zero value means "the defaults": no
// key source and no API key, so every route that requires authentication answers 401 until one
// is configured. Decode it strictly (unknown fields are errors).
type Config struct {
	// Sources are the trusted token issuers. A token is verified only by the source whose
	// Issuer equals its `iss`. Default: none.
	Sources []Source `yaml:"sources"`
	// APIKeys are the server-to-server keys accepted in X-API-Key. Default: none.
	APIKeys []APIKey `yaml:"api_keys"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Default: DefaultLeeway (30s).
	Leeway time.Duration `yaml:"leeway"`
	// MaxTokenBytes caps the Authorization header value. Default: DefaultMaxTokenBytes (8 KiB).
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// Cache is the cache of verified tokens. Default: on, DefaultCacheSize (10000) tokens for
	// at most DefaultCacheMaxTTL (5m) each.
	Cache Cache `yaml:"cache"`
}

// Cache configures the cache of verified tokens, keyed by the SHA-256 of the token.
type Cache struct {
	// Disabled turns the cache off: every request verifies its token. Default: false.
	Disabled bool `yaml:"disabled"`
	// Size is how many tokens are kept; the oldest-expiring of a small sample is evicted when
	// full. Default: DefaultCacheSize (10000).
	Size int `yaml:"size"`
	// MaxTTL bounds how long an entry is served; an entry never outlives its token's exp, nor
	// a change of its source's key set. Default: DefaultCacheMaxTTL (5m).
	MaxTTL time.Duration `yaml:"max_ttl"`
}

// Source is one trusted token issuer and where its verification keys come from. Exactly one of
// JWKSURL, JWKSFile, KeyFiles and SecretFile is set.
type Source struct {
	// Name appears in logs and metrics. Default: the issuer.
	Name string `yaml:"name"`
	// Issuer is the exact `iss` of this source's tokens. Required, unique across sources.
	Issuer string `yaml:"issuer"`
	// Audiences: a token's `aud` (a string or an array) must contain at least one of them.
	// Required, none of them empty.
	Audiences []string `yaml:"audiences"`
	// Algorithms is the allow-list of `alg` values. Default: RS256, ES256 and EdDSA for the
	// key sources, HS256 for SecretFile. HS* is allowed only with SecretFile, and a key is used
	// only for the algorithms of its type.
	Algorithms []string `yaml:"algorithms"`

	// JWKSURL is fetched at start (a failure is logged, not fatal: tokens are refused until a
	// fetch succeeds), every RefreshInterval, and when a token names an unknown kid (at most once
	// per UnknownKIDInterval). A failed fetch keeps the last good keys. https only, except for
	// loopback hosts. Tokens from a JWKS URL must carry a kid. Default: "" (none).
	JWKSURL string `yaml:"jwks_url"`
	// RefreshInterval is how often JWKSURL is fetched. Default: DefaultRefreshInterval (1h).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// UnknownKIDInterval is the minimum time between fetches caused by unknown kids; it must
	// not be shorter than FetchTimeout. Default: DefaultUnknownKIDInterval (5m).
	UnknownKIDInterval time.Duration `yaml:"unknown_kid_interval"`
	// FetchTimeout bounds one fetch of JWKSURL. Default: DefaultFetchTimeout (10s).
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// MaxJWKSBytes caps the JWKS response body. Default: DefaultMaxJWKSBytes (1 MiB).
	MaxJWKSBytes int64 `yaml:"max_jwks_bytes"`

	// JWKSFile is a JWKS document on disk, read once at start (public keys with kid).
	// Default: "" (none).
	JWKSFile string `yaml:"jwks_file"`
	// KeyFiles are PEM public keys (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE) read once at
	// start. Default: none.
	KeyFiles []KeyFile `yaml:"key_files"`
	// SecretFile holds an HMAC shared secret (at least 32 bytes; one trailing newline is
	// ignored), read once at start. Its tokens may omit kid. Default: "" (none).
	SecretFile string `yaml:"secret_file"`

	// RolesClaim names the claim holding a JSON array of role strings. Default:
	// DefaultRolesClaim ("roles"). A claim of another type makes the token invalid.
	RolesClaim string `yaml:"roles_claim"`
	// ScopeClaim, when set (usually "scope"), names a space-separated string whose words are
	// added to the roles. Default: "" (not read).
	ScopeClaim string `yaml:"scope_claim"`

	// PlainSubjects makes the passport's subject the token's `sub` as it is. By default it is
	// namespaced, "<name>|<sub>", so that two sources never share a customer (OIDC: the
	// identifier is iss+sub). At most one source may set it (the development source does, so
	// that `make run` shows plain subjects); a `sub` holding "|" from it is refused (401): it
	// could name another source's customer. Default: false.
	PlainSubjects bool `yaml:"plain_subjects"`
	// AllowedRoles are the roles this source may grant; any other role its tokens name is
	// dropped (an issuer that may not grant admin cannot). Default: empty, any role.
	AllowedRoles []string `yaml:"allowed_roles"`
}

// APIKeyNamespace is the namespace of the subjects API keys authenticate as ("apikey|<subject>"):
// no token source may take this name.
const APIKeyNamespace = "apikey"

// subjectSeparator joins a source's name and a token's sub into the passport subject. Source
// names may not hold it, so the namespaced subject is unambiguous.
const subjectSeparator = "|"

// ValidRole reports whether a role name can be granted: not empty, no ',' (the passport's
// separator), no space or control character at either end, valid UTF-8. A token naming
// another is refused (401).
func ValidRole(r string) bool {
	if r == "" || !utf8.ValidString(r) || strings.ContainsRune(r, ',') {
		return false
	}
	first, _ := utf8.DecodeRuneInString(r)
	last, _ := utf8.DecodeLastRuneInString(r)
	return !unicode.IsSpace(first) && !unicode.IsSpace(last) && !unicode.IsControl(first) && !unicode.IsControl(last)
}

// KeyFile is one static public key.
type KeyFile struct {
	// Path of the PEM file. Required.
	Path string `yaml:"path"`
	// KID is the key id tokens name in their header. Required when the source has more than
	// one key; a token without kid is accepted only by a source that holds exactly one key.
	// Default: "" (allowed only for the one key of a source).
	KID string `yaml:"kid"`
}

// APIKey is one server-to-server key. Only its SHA-256 is configured, never the key itself.
type APIKey struct {
	// Name says who holds the key, for the operator reading the configuration; the gateway
	// does not use it. Default: empty.
	Name string `yaml:"name"`
	// SHA256 is the lowercase or uppercase hex SHA-256 of the key (64 hex digits). Required.
	// `printf %s "$KEY" | sha256sum` prints it.
	SHA256 string `yaml:"sha256"`
	// Subject is the identity the key authenticates as; the passport names it
	// "apikey|<subject>", apart from every token source's subjects. Required.
	Subject string `yaml:"subject"`
	// Roles granted to the key. Default: none.
	Roles []string `yaml:"roles"`
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger for state changes (JWKS fetch failures) and, at debug level, why a credential was
	// refused. Default: slog.Default().
	Logger *slog.Logger
	// Registerer for metrics (gateway_auth_requests_total, gateway_auth_token_cache_total,
	// gateway_auth_jwks_fetch_total). Collectors an earlier Authenticator registered on it are
	// reused. Default: none registered.
	Registerer prometheus.Registerer
	// Clock is the time tokens are checked against (exp, nbf, iat, cache expiry).
	// Default: time.Now.
	Clock func() time.Time
	// HTTPClient fetches JWKS URLs; it is copied and its transport wrapped to cap response
	// bodies at MaxJWKSBytes. Default: a client with its own transport and no proxy.
	HTTPClient *http.Client
}

// Supported algorithms and the key types they need.
var (
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
	hmacAlgs       = []string{"HS256", "HS384", "HS512"}
	defaultKeyAlgs = []string{"RS256", "ES256", "EdDSA"}
	defaultHMAC    = []string{"HS256"}
)

// withDefaults returns cfg with every zero field replaced by its default.
func (cfg Config) withDefaults() Config {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxTokenBytes == 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if cfg.Cache.Size == 0 {
		cfg.Cache.Size = DefaultCacheSize
	}
	if cfg.Cache.MaxTTL == 0 {
		cfg.Cache.MaxTTL = DefaultCacheMaxTTL
	}
	sources := make([]Source, len(cfg.Sources))
	for i, s := range cfg.Sources {
		sources[i] = s.withDefaults()
	}
	cfg.Sources = sources
	return cfg
}

func (s Source) withDefaults() Source {
	if s.Name == "" {
		s.Name = s.Issuer
	}
	if len(s.Algorithms) == 0 {
		if s.SecretFile != "" {
			s.Algorithms = defaultHMAC
		} else {
			s.Algorithms = defaultKeyAlgs
		}
	}
	if s.RolesClaim == "" {
		s.RolesClaim = DefaultRolesClaim
	}
	if s.JWKSURL != "" {
		if s.RefreshInterval == 0 {
			s.RefreshInterval = DefaultRefreshInterval
		}
		if s.UnknownKIDInterval == 0 {
			s.UnknownKIDInterval = DefaultUnknownKIDInterval
		}
		if s.FetchTimeout == 0 {
			s.FetchTimeout = DefaultFetchTimeout
		}
		if s.MaxJWKSBytes == 0 {
			s.MaxJWKSBytes = DefaultMaxJWKSBytes
		}
	}
	return s
}

// validate reports every problem of cfg, which already has its defaults, joined in one error.
func (cfg Config) validate() error {
	var errs []error
	if cfg.Leeway < 0 || cfg.Leeway > 10*time.Minute {
		errs = append(errs, fmt.Errorf("leeway %s: want 0..10m", cfg.Leeway))
	}
	if cfg.MaxTokenBytes < 256 || cfg.MaxTokenBytes > 64<<10 {
		errs = append(errs, fmt.Errorf("max_token_bytes %d: want 256..65536", cfg.MaxTokenBytes))
	}
	if cfg.Cache.Size < 0 || cfg.Cache.MaxTTL < 0 {
		errs = append(errs, errors.New("cache: size and max_ttl must not be negative"))
	}
	issuers, names, plain := map[string]bool{}, map[string]bool{}, 0
	for i, s := range cfg.Sources {
		for _, err := range s.problems() {
			errs = append(errs, fmt.Errorf("source %d (%s): %w", i, s.Name, err))
		}
		if s.Issuer != "" && issuers[s.Issuer] {
			errs = append(errs, fmt.Errorf("source %d: issuer %q is configured twice", i, s.Issuer))
		}
		issuers[s.Issuer] = true
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("source %d: name %q is used twice (it namespaces the subjects)", i, s.Name))
		}
		names[s.Name] = true
		if s.PlainSubjects {
			plain++
		}
	}
	if plain > 1 {
		errs = append(errs, errors.New("plain_subjects: at most one source may set it, or two sources could share a customer"))
	}
	hashes := map[string]bool{}
	for i, k := range cfg.APIKeys {
		if k.Subject == "" {
			errs = append(errs, fmt.Errorf("api key %d: subject is required", i))
		}
		for _, r := range k.Roles {
			if !ValidRole(r) {
				errs = append(errs, fmt.Errorf("api key %d (%s): role %q: want no ',' and no surrounding space", i, k.Subject, r))
			}
		}
		sum, err := hex.DecodeString(k.SHA256)
		switch {
		case err != nil || len(sum) != 32:
			errs = append(errs, fmt.Errorf("api key %d (%s): sha256 must be 64 hex digits (the hash, never the key)", i, k.Subject))
		case hashes[string(sum)]:
			errs = append(errs, fmt.Errorf("api key %d (%s): the same hash is configured twice", i, k.Subject))
		}
		hashes[string(sum)] = true
	}
	return errors.Join(errs...)
}

// problems returns every problem of s, which already has its defaults.
func (s Source) problems() []error {
	var errs []error
	if s.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if strings.Contains(s.Name, subjectSeparator) || s.Name == APIKeyNamespace {
		errs = append(errs, fmt.Errorf("name %q: must not hold %q nor be %q (it namespaces subjects)", s.Name, subjectSeparator, APIKeyNamespace))
	}
	for _, r := range s.AllowedRoles {
		if !ValidRole(r) {
			errs = append(errs, fmt.Errorf("allowed_roles: %q: want no ',' and no surrounding space", r))
		}
	}
	if len(s.Audiences) == 0 || slices.Contains(s.Audiences, "") {
		errs = append(errs, errors.New("audiences are required and must not be empty strings"))
	}
	kinds := 0
	for _, set := range []bool{s.JWKSURL != "", s.JWKSFile != "", len(s.KeyFiles) > 0, s.SecretFile != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		errs = append(errs, errors.New("exactly one of jwks_url, jwks_file, key_files and secret_file is required"))
	}
	for _, alg := range s.Algorithms {
		switch {
		case slices.Contains(hmacAlgs, alg):
			if s.SecretFile == "" {
				errs = append(errs, fmt.Errorf("algorithm %s needs secret_file", alg))
			}
		case slices.Contains(asymmetricAlgs, alg):
			if s.SecretFile != "" {
				errs = append(errs, fmt.Errorf("algorithm %s cannot be used with secret_file", alg))
			}
		default:
			errs = append(errs, fmt.Errorf("algorithm %q is not supported", alg))
		}
	}
	if len(s.KeyFiles) > 1 {
		seen := map[string]bool{}
		for _, k := range s.KeyFiles {
			switch {
			case k.KID == "":
				errs = append(errs, errors.New("key_files: every key needs a kid when there are several"))
			case seen[k.KID]:
				errs = append(errs, fmt.Errorf("key_files: kid %q is used twice", k.KID))
			}
			seen[k.KID] = true
		}
	}
	for _, k := range s.KeyFiles {
		if k.Path == "" {
			errs = append(errs, errors.New("key_files: path is required"))
		}
	}
	if s.JWKSURL != "" {
		if err := checkJWKSURL(s.JWKSURL); err != nil {
			errs = append(errs, err)
		}
		if s.RefreshInterval < time.Second || s.FetchTimeout <= 0 || s.MaxJWKSBytes <= 0 {
			errs = append(errs, errors.New("refresh_interval must be at least 1s; fetch_timeout and max_jwks_bytes positive"))
		}
		if s.UnknownKIDInterval < s.FetchTimeout {
			errs = append(errs, errors.New("unknown_kid_interval must not be shorter than fetch_timeout"))
		}
	}
	return errs
}

// checkJWKSURL accepts https URLs, and http only for loopback hosts (tests, a local IdP).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("jwks_url %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("jwks_url %q: https is required (http only for loopback)", raw)
}
