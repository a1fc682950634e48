package server

import (
	"net/textproto"
	"strings"
	"testing"
)

func TestIncomingHeaderAllowList(t *testing.T) {
	tests := []struct {
		header string
		want   string // "" = dropped
	}{
		{"Idempotency-Key", "idempotency-key"},
		{"X-Request-Id", "x-request-id"},
		{"Traceparent", "traceparent"},
		{"Tracestate", "tracestate"},
		{"Accept-Language", "accept-language"},
		{"User-Agent", "grpcgateway-user-agent"},
		{"Authorization", ""},
		{"Cookie", ""},
		{"X-Api-Key", ""},
		{"X-Forwarded-For", ""},
		{"X-Forwarded-Host", ""},
		{"Forwarded", ""},
		{"Host", ""},
		{"Origin", ""},
		{"Grpc-Timeout", ""},
		{"Grpc-Metadata-Anything", ""},
		{"Grpc-Metadata-Grpcgateway-Host", ""},
		{"X-User-Id", ""},
		{"X-User-Roles", ""},
		{"X-User-Auth", ""},
		{"X_user_id", ""},
		{"Grpc-Metadata-X-User-Id", ""},
		{"Grpc-Metadata-X_user_roles", ""},
		{"Grpc-Metadata-Idempotency-Key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			key := textproto.CanonicalMIMEHeaderKey(tt.header) // what grpc-gateway passes
			got, ok := incomingHeader(key)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("incomingHeader(%q) = %q, %v; want %q", key, got, ok, tt.want)
			}
			if ok && (got == "x-passport" || strings.HasPrefix(got, "x-user-")) { // the passport's key, and the unsigned one's of old
				t.Errorf("allow-listed %q maps to the passport key %q", key, got)
			}
		})
	}
}

func TestOutgoingHeadersNone(t *testing.T) {
	for _, k := range []string{"content-type", "grpc-status", "x-internal-host", "set-cookie"} {
		if got, ok := outgoingHeader(k); ok {
			t.Errorf("outgoingHeader(%q) exposes it as %q", k, got)
		}
	}
}
