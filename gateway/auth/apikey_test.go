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
