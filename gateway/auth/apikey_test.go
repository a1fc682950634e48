package auth_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/auth"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	cfg := staticConfig(t)
	f := newFixture(t, cfg, auth.Options{}, nil)

	// The same configuration without the billing key: what a reload that revokes it builds.
	revoked := cfg
	revoked.APIKeys = cfg.APIKeys[1:]
	g := newFixture(t, revoked, auth.Options{}, nil)

	invalid := want{status: 401, challenge: challengeAPIKey}
	tests := []struct {
		name string
		f    *fixture
		key  string
		want want
	}{
		{"valid", f, apiKey, want{status: 200, subject: "svc-billing", roles: []string{"admin"}}},
		{"second key", f, otherAPIKey, want{status: 200, subject: "svc-reports"}},
		{"unknown", f, "sk_test_unknown", invalid},
		{"last byte differs", f, apiKey[:len(apiKey)-1] + "X", invalid},
		{"first byte differs", f, "X" + apiKey[1:], invalid},
		{"prefix of a key", f, apiKey[:len(apiKey)-1], invalid},
		{"key with a suffix", f, apiKey + "0", invalid},
		{"the hash instead of the key", f, sha256Hex(apiKey), invalid},
		{"over the size cap", f, strings.Repeat("k", auth.MaxAPIKeyBytes+1), invalid},
		{"revoked by reload", g, apiKey, invalid},
		{"kept by reload", g, otherAPIKey, want{status: 200, subject: "svc-reports"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tt.f.get(t, "/required", http.Header{"X-Api-Key": {tt.key}}), tt.want)
		})
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub := writeFile(t, dir, "k.pem", []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	jwks := auth.Source{Issuer: issuer, Audiences: []string{audience}, JWKSURL: "https://idp.test/jwks.json"}
	tests := []struct {
		name    string
		cfg     auth.Config
		wantErr string
	}{
		{"zero value", auth.Config{}, ""},
		{"api key in clear", auth.Config{APIKeys: []auth.APIKey{{SHA256: apiKey, Subject: "s"}}}, "64 hex digits"},
		{"api key without subject", auth.Config{APIKeys: []auth.APIKey{{SHA256: sha256Hex(apiKey)}}}, "subject is required"},
		{"api key twice", auth.Config{APIKeys: []auth.APIKey{{SHA256: sha256Hex(apiKey), Subject: "a"}, {SHA256: strings.ToUpper(sha256Hex(apiKey)), Subject: "b"}}}, "twice"},
		{"source without issuer", auth.Config{Sources: []auth.Source{{Audiences: []string{audience}, JWKSURL: jwks.JWKSURL}}}, "issuer is required"},
		{"source without audience", auth.Config{Sources: []auth.Source{{Issuer: issuer, JWKSURL: jwks.JWKSURL}}}, "audiences are required"},
		{"source without keys", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}}}}, "exactly one of"},
		{"two issuers alike", auth.Config{Sources: []auth.Source{{Name: "x", Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}}}, {Name: "y", Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}}}}}, "configured twice"},
		{"jwks over plain http", auth.Config{Sources: []auth.Source{func() auth.Source { s := jwks; s.JWKSURL = "http://idp.test/jwks.json"; return s }()}}, "https is required"},
		{"HS256 on a jwks url", auth.Config{Sources: []auth.Source{func() auth.Source { s := jwks; s.Algorithms = []string{"HS256"}; return s }()}}, "needs secret_file"},
		{"alg none", auth.Config{Sources: []auth.Source{func() auth.Source { s := jwks; s.Algorithms = []string{"none"}; return s }()}}, "not supported"},
		{"unknown kid interval shorter than the fetch", auth.Config{Sources: []auth.Source{func() auth.Source {
			s := jwks
			s.UnknownKIDInterval, s.FetchTimeout = time.Second, 5*time.Second
			return s
		}()}}, "unknown_kid_interval"},
		{"several keys without kid", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}, {Path: pub}}}}}, "needs a kid"},
		{"leeway too large", auth.Config{Leeway: time.Hour}, "leeway"},
		{"unreadable key file", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: dir + "/missing.pem"}}}}}, "reading key file"},
		{"empty PEM key", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}}}}}, "key file"},
		{"short secret", auth.Config{Sources: []auth.Source{{Issuer: hmacIss, Audiences: []string{audience}, SecretFile: writeFile(t, dir, "short", []byte("short"))}}}, "at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New(tt.cfg, auth.Options{Logger: quiet})
			if err == nil {
				_ = a.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestMetricsSurviveRebuild: the gateway builds a new Authenticator on each reload, on the same
// registry; the second registration reuses the first one's collectors.
func TestMetricsSurviveRebuild(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := staticConfig(t)
	first := newFixture(t, cfg, auth.Options{Registerer: reg}, nil)
	second := newFixture(t, cfg, auth.Options{Registerer: reg}, nil)
	check(t, first.get(t, "/required", nil), want{status: 401, challenge: challengeNone})
	check(t, second.get(t, "/required", nil), want{status: 401, challenge: challengeNone})
	check(t, second.get(t, "/required", bearer(edToken(claims("alice")))), want{status: 200, subject: "alice"})
	if n := counterValue(t, reg, "gateway_auth_requests_total", "missing"); n != 2 {
		t.Fatalf("missing = %v, want 2", n)
	}
	if n := counterValue(t, reg, "gateway_auth_requests_total", "jwt"); n != 1 {
		t.Fatalf("jwt = %v, want 1", n)
	}
}

// TestRefusedBeforeBody: a refused request's body is never read.
func TestRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	f := newFixture(t, staticConfig(t), auth.Options{}, nil)
	body := `{"items":[{"sku":"A","quantity":1}]}`
	tests := []struct {
		name      string
		path      string
		hdr       http.Header
		status    int
		wantReads bool
	}{
		{"no token", "/required", nil, 401, false},
		{"invalid token", "/required", bearer("x.y.z"), 401, false},
		{"invalid api key", "/required", http.Header{"X-Api-Key": {"nope"}}, 401, false},
		{"missing role", "/admin", bearer(edToken(claims("alice", "customer"))), 403, false},
		{"admitted", "/required", bearer(edToken(claims("alice", "customer"))), 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			served := f.served.Load()
			r := f.do(t, http.MethodPost, tt.path, tt.hdr, strings.NewReader(body))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			reads := f.reads.Load()
			if tt.wantReads {
				if reads == 0 || f.served.Load() != served+1 {
					t.Fatalf("admitted request: %d body reads, served %d", reads, f.served.Load()-served)
				}
				return
			}
			if reads != 0 || f.served.Load() != served {
				t.Fatalf("refused request: %d body reads, handler ran %d times", reads, f.served.Load()-served)
			}
		})
	}
}

// TestRefusedWhileBodyStalls: a client sends the headers of a POST and the start of its body,
// then nothing; the 401 arrives at once, without waiting for the rest of the body.
func TestRefusedWhileBodyStalls(t *testing.T) {
	t.Parallel()
	f := newFixture(t, staticConfig(t), auth.Options{}, nil)
	tests := []struct {
		name   string
		header string
	}{
		{"small body", "Content-Length: 1000"},
		{"large body", "Content-Length: 1048576"},
		{"chunked body", "Transfer-Encoding: chunked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := "POST /required HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n" + tt.header + "\r\n\r\n"
			if strings.HasPrefix(tt.header, "Transfer") {
				head += "9\r\n{\"items\":"
			} else {
				head += "{\"items\":"
			}
			if _, err := conn.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := conn.SetReadDeadline(start.Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response while the body stalls: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != challengeNone {
				t.Fatalf("status %d challenge %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), challengeNone)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("401 took %s", d)
			}
			if n := f.reads.Load(); n != 0 {
				t.Fatalf("body read %d times", n)
			}
		})
	}
}
