package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
)

// TestTokens sends each token as a real request to /required and checks the answer.
func TestTokens(t *testing.T) {
	t.Parallel()
	k := keys()
	cfg := staticConfig(t)
	cfg.Cache.Disabled = true // every case verifies
	f := newFixture(t, cfg, auth.Options{}, nil)
	jku := authtest.NewCountingListener(t)

	rsaPEM := authtest.PublicPEM(&k.RSA.PublicKey)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&k.RSA.PublicKey)
	ecPEM := authtest.PublicPEM(&k.EC.PublicKey)
	ecDER, _ := x509.MarshalPKIXPublicKey(&k.EC.PublicKey)
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	good := claims("alice", "customer")
	leeway := auth.DefaultLeeway
	valid := want{status: http.StatusOK, subject: "alice", roles: []string{"customer"}}
	invalid := want{status: http.StatusUnauthorized, challenge: challengeInvalid}
	expired := want{status: http.StatusUnauthorized, challenge: challengeExpired}
	valid0 := edToken(good)

	tests := []struct {
		name  string
		token string
		want  want
	}{
		{"RS256 valid", rsaToken(good), valid},
		{"ES256 valid", ecToken(good), valid},
		{"EdDSA valid", valid0, valid},
		{"PEM key without kid", authtest.Sign("RS256", k.RSA, nil, with(good, "iss", pemIss)), valid},
		{"HS256 with the shared secret, roles from scope", authtest.Sign("HS256", []byte(secret), nil, with(good, "iss", hmacIss, "roles", nil, "scope", "customer")), valid},

		// alg
		{"alg none", authtest.Sign("none", nil, map[string]any{"kid": "ed-1"}, good), invalid},
		{"alg None", authtest.Sign("None", nil, map[string]any{"kid": "ed-1"}, good), invalid},
		{"alg NONE signed", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "alg": "NONE"}, good), invalid},
		{"alg empty", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "alg": ""}, good), invalid},
		{"alg missing", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "alg": nil}, good), invalid},
		{"alg not a string", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "alg": 7}, good), invalid},
		{"alg RS512 not allowed", authtest.Sign("RS512", k.RSA, map[string]any{"kid": "rsa-1"}, good), invalid},
		{"alg HS256 not allowed on a key source", authtest.Sign("HS256", []byte(secret), map[string]any{"kid": "rsa-1"}, good), invalid},

		// HS256 signed with a public key as the secret (the alg confusion attack)
		{"HS256 with RSA public PEM", authtest.Sign("HS256", rsaPEM, map[string]any{"kid": "rsa-1"}, good), invalid},
		{"HS256 with RSA public DER", authtest.Sign("HS256", rsaDER, map[string]any{"kid": "rsa-1"}, good), invalid},
		{"HS256 with EC public PEM", authtest.Sign("HS256", ecPEM, map[string]any{"kid": "ec-1"}, good), invalid},
		{"HS256 with EC public DER", authtest.Sign("HS256", ecDER, map[string]any{"kid": "ec-1"}, good), invalid},
		{"HS256 with RSA PEM, PEM source without kid", authtest.Sign("HS256", rsaPEM, nil, with(good, "iss", pemIss)), invalid},
		{"HS256 with RSA DER, PEM source without kid", authtest.Sign("HS256", rsaDER, nil, with(good, "iss", pemIss)), invalid},
		{"HS256 with the secret but another issuer", authtest.Sign("HS256", []byte(secret), nil, good), invalid},

		// kid
		{"kid of an RSA key on an ES256 token", authtest.Sign("ES256", k.EC, map[string]any{"kid": "rsa-1"}, good), invalid},
		{"kid of an EC key on an EdDSA token", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ec-1"}, good), invalid},
		{"kid of an Ed25519 key on an RS256 token", authtest.Sign("RS256", k.RSA, map[string]any{"kid": "ed-1"}, good), invalid},
		{"kid as a path", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "../../../../etc/passwd"}, good), invalid},
		{"kid of 10 KB", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": strings.Repeat("k", 10<<10)}, good), invalid},
		{"kid a number", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": 1}, good), invalid},
		{"kid an object", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": map[string]any{"kid": "ed-1"}}, good), invalid},
		{"kid an array", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": []string{"ed-1"}}, good), invalid},
		{"kid unknown", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "nope"}, good), invalid},
		{"kid missing, source has several keys", authtest.Sign("EdDSA", k.Ed, nil, good), invalid},
		{"kid with a control character", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1\n"}, good), invalid},

		// headers that must not be honoured
		{"crit", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "crit": []string{"exp"}}, good), invalid},
		{"crit empty", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "crit": []string{}}, good), invalid},
		{"jku to a local listener, attacker key", authtest.Sign("EdDSA", attacker, map[string]any{"kid": "ed-1", "jku": jku.URL}, good), invalid},
		{"x5u to a local listener, attacker key", authtest.Sign("EdDSA", attacker, map[string]any{"kid": "ed-1", "x5u": jku.URL}, good), invalid},
		{"embedded jwk of the attacker", authtest.Sign("EdDSA", attacker, map[string]any{"kid": "ed-1", "jwk": authtest.JWK("ed-1", "EdDSA", attacker.Public())}, good), invalid},
		{"jku on a validly signed token is ignored", authtest.Sign("EdDSA", k.Ed, map[string]any{"kid": "ed-1", "jku": jku.URL}, good), valid},

		// time
		{"expired", edToken(with(good, "exp", t0.Add(-time.Hour).Unix())), expired},
		{"expired just inside leeway", edToken(with(good, "iat", t0.Add(-time.Hour).Unix(), "exp", t0.Add(-leeway+time.Second).Unix())), valid},
		{"expired just outside leeway", edToken(with(good, "iat", t0.Add(-time.Hour).Unix(), "exp", t0.Add(-leeway-time.Second).Unix())), expired},
		{"exp missing", edToken(with(good, "exp", nil)), invalid},
		{"exp a string", edToken(with(good, "exp", "tomorrow")), invalid},
		{"nbf in the future", edToken(with(good, "nbf", t0.Add(time.Minute).Unix())), invalid},
		{"nbf just inside leeway", edToken(with(good, "nbf", t0.Add(leeway-time.Second).Unix())), valid},
		{"iat in the future", edToken(with(good, "iat", t0.Add(time.Minute).Unix())), invalid},

		// aud, iss, sub, roles
		{"aud wrong", edToken(with(good, "aud", "other-api")), invalid},
		{"aud array with ours", edToken(with(good, "aud", []string{"other-api", audience})), valid},
		{"aud array without ours", edToken(with(good, "aud", []string{"other-api", "third"})), invalid},
		{"aud empty array", edToken(with(good, "aud", []string{})), invalid},
		{"aud missing", edToken(with(good, "aud", nil)), invalid},
		{"aud a number", edToken(with(good, "aud", 1)), invalid},
		{"iss missing", edToken(with(good, "iss", nil)), invalid},
		{"iss wrong", edToken(with(good, "iss", "https://evil.test")), invalid},
		{"iss of another source", edToken(with(good, "iss", pemIss)), invalid},
		{"iss not a string", edToken(with(good, "iss", []string{issuer})), invalid},
		{"sub missing", edToken(with(good, "sub", nil)), invalid},
		{"sub empty", edToken(with(good, "sub", "")), invalid},
		{"sub a number", edToken(with(good, "sub", 42)), invalid},
		{"roles a string", edToken(with(good, "roles", "admin")), invalid},
		{"roles with a number", edToken(with(good, "roles", []any{"customer", 1})), invalid},

		// encoding
		{"truncated", valid0[:len(valid0)-10], invalid},
		{"signature removed", valid0[:strings.LastIndexByte(valid0, '.')+1], invalid},
		{"two segments", valid0[:strings.LastIndexByte(valid0, '.')], invalid},
		{"four segments", valid0 + ".e30", invalid},
		{"bad base64 in the payload", strings.Replace(valid0, ".", ".*", 1), invalid},
		{"padded base64", strings.Replace(valid0, ".", "=.", 1), invalid},
		{"standard base64 alphabet", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"sub":"alice"}`) + "+/", invalid},
		{"header not JSON", authtest.B64([]byte("alg")) + "." + strings.SplitN(valid0, ".", 2)[1], invalid},
		{"payload an array", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `["alice"]`), invalid},
		{"empty token", "", invalid},

		// duplicate members: encoding/json keeps the last, so a verifier and a signer can
		// disagree; refused outright
		{"duplicate sub", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice","sub":"admin"}`), invalid},
		{"duplicate roles", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice","roles":["customer"],"roles":["admin"]}`), invalid},
		{"duplicate alg in the header", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"none","kid":"ed-1","alg":"EdDSA"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice"}`), invalid},
		{"duplicate in a nested object", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice","x":{"a":1,"a":2}}`), invalid},
		{"duplicate sub in another case", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice","SUB":"admin"}`), invalid},
		{"escaped duplicate sub", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice","s\u0075b":"admin"}`), invalid},
		{"raw payload without duplicates is fine", authtest.SignRaw("EdDSA", k.Ed, `{"alg":"EdDSA","kid":"ed-1"}`, `{"iss":"`+issuer+`","aud":"`+audience+`","exp":`+itoa(t0.Add(time.Hour).Unix())+`,"sub":"alice","roles":["customer"]}`), valid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, f.get(t, "/required", bearer(tt.token)), tt.want)
		})
	}
	if n := jku.Connections(); n != 0 {
		t.Fatalf("jku/x5u listener received %d connections, want 0", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestCredentials covers how credentials are carried: header only, one of them, size cap.
func TestCredentials(t *testing.T) {
	t.Parallel()
	// The server accepts 4 MiB of headers, so that the 1 MB token reaches the middleware.
	f := newFixture(t, staticConfig(t), auth.Options{}, func(s *http.Server) { s.MaxHeaderBytes = 4 << 20 })
	token := edToken(claims("alice", "customer"))
	tests := []struct {
		name string
		path string
		hdr  http.Header
		want want
	}{
		{"no credential", "/required", nil, want{status: 401, challenge: challengeNone}},
		{"token in the query string is ignored", "/required?access_token=" + token, nil, want{status: 401, challenge: challengeNone}},
		{"token in the query string on an optional route stays anonymous", "/optional?access_token=" + token, nil, want{status: 200}},
		{"lower-case scheme", "/required", http.Header{"Authorization": {"bearer " + token}}, want{status: 200, subject: "alice"}},
		{"Basic scheme", "/required", http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}, want{status: 401, challenge: challengeNone}},
		{"scheme without token", "/required", http.Header{"Authorization": {"Bearer"}}, want{status: 401, challenge: challengeInvalid}},
		{"empty bearer token", "/required", http.Header{"Authorization": {"Bearer "}}, want{status: 401, challenge: challengeInvalid}},
		{"two Authorization headers", "/required", http.Header{"Authorization": {"Bearer " + token, "Bearer " + token}}, want{status: 401, challenge: challengeMultiple}},
		{"Bearer and X-API-Key", "/required", http.Header{"Authorization": {"Bearer " + token}, "X-Api-Key": {apiKey}}, want{status: 401, challenge: challengeMultiple}},
		{"two X-API-Key headers", "/required", http.Header{"X-Api-Key": {apiKey, apiKey}}, want{status: 401, challenge: challengeMultiple}},
		{"two credentials on an optional route", "/optional", http.Header{"Authorization": {"Bearer " + token}, "X-Api-Key": {apiKey}}, want{status: 401, challenge: challengeMultiple}},
		{"token over the size cap", "/required", bearer(token + "." + strings.Repeat("A", auth.DefaultMaxTokenBytes)), want{status: 401, challenge: challengeInvalid}},
		{"1 MB token", "/required", bearer(strings.Repeat("A", 1<<20)), want{status: 401, challenge: challengeInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, f.get(t, tt.path, tt.hdr), tt.want)
		})
	}
}

// TestModesAndRoles is the AuthNone/Optional/Required x roles table.
func TestModesAndRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, staticConfig(t), auth.Options{}, nil)
	customer := bearer(edToken(claims("alice", "customer")))
	admin := bearer(rsaToken(claims("root", "admin")))
	support := bearer(ecToken(claims("sam", "support", "customer")))
	noRoles := bearer(edToken(claims("nina")))
	bad := bearer(edToken(claims("alice", "customer"))[:40])
	expired := bearer(edToken(with(claims("alice"), "exp", t0.Add(-time.Hour).Unix())))
	key := http.Header{"X-Api-Key": {apiKey}}             // svc-billing, admin
	keyNoRoles := http.Header{"X-Api-Key": {otherAPIKey}} // svc-reports

	ok := func(sub string) want { return want{status: 200, subject: sub} }
	anon := want{status: 200}
	missing := want{status: 401, challenge: challengeNone}
	invalid := want{status: 401, challenge: challengeInvalid}
	forbidden := want{status: 403, challenge: challengeRole}

	tests := []struct {
		path string
		cred string
		hdr  http.Header
		want want
	}{
		// AuthNone: nothing checked, nothing attached, whatever is sent.
		{"/none", "none", nil, anon},
		{"/none", "customer", customer, anon},
		{"/none", "invalid", bad, anon},
		{"/none", "expired", expired, anon},
		{"/none", "api key", key, anon},
		{"/none-admin", "none", nil, anon},
		// AuthOptional: verified when sent, anonymous otherwise.
		{"/optional", "none", nil, anon},
		{"/optional", "customer", customer, ok("alice")},
		{"/optional", "api key", key, ok("svc-billing")},
		{"/optional", "invalid", bad, invalid},
		{"/optional", "expired", expired, want{status: 401, challenge: challengeExpired}},
		{"/optional-admin", "none", nil, missing},
		{"/optional-admin", "customer", customer, forbidden},
		{"/optional-admin", "admin", admin, ok("root")},
		// AuthRequired.
		{"/required", "none", nil, missing},
		{"/required", "customer", customer, ok("alice")},
		{"/required", "no roles", noRoles, ok("nina")},
		{"/required", "api key", keyNoRoles, ok("svc-reports")},
		{"/required", "invalid", bad, invalid},
		{"/unrouted", "none", nil, missing},
		{"/unrouted", "customer", customer, ok("alice")},
		// Roles, any-of.
		{"/admin", "none", nil, missing},
		{"/admin", "customer", customer, forbidden},
		{"/admin", "no roles", noRoles, forbidden},
		{"/admin", "admin", admin, ok("root")},
		{"/admin", "api key with admin", key, ok("svc-billing")},
		{"/admin", "api key without roles", keyNoRoles, forbidden},
		{"/staff", "support", support, ok("sam")},
		{"/staff", "admin", admin, ok("root")},
		{"/staff", "customer", customer, forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.cred, func(t *testing.T) {
			r := f.get(t, tt.path, tt.hdr)
			check(t, r, tt.want)
			if r.status == 200 && tt.want.subject != "" {
				wantMethod := "jwt"
				if tt.hdr.Get("X-Api-Key") != "" {
					wantMethod = "apikey"
				}
				if r.seen.Method != wantMethod {
					t.Fatalf("method = %q, want %q", r.seen.Method, wantMethod)
				}
			}
		})
	}
}
