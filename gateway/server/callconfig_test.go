package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/retry"
	"github.com/acme/shopgate/gateway/upstream"
)

// TestMethodConfigs checks the per-method service config built from routes: every routed RPC
// gets its timeout, an idempotent one its retry policy too, every service the default timeout,
// and Options.MethodConfigs replaces what it names.
func TestMethodConfigs(t *testing.T) {
	routes := []policy.Route{
		{RPC: "/a.S/Get", Policy: policy.Policy{Timeout: 2 * time.Second, Idempotent: true}},
		{RPC: "/a.S/Get", Policy: policy.Policy{Timeout: 2 * time.Second, Idempotent: true}}, // a second binding
		{RPC: "/a.S/Put", Policy: policy.Policy{Timeout: 1500 * time.Millisecond}},
		{RPC: "/b.T/Watch", Policy: policy.Policy{Timeout: 300 * time.Second}},
	}
	const retried = `"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}`
	tests := []struct {
		name    string
		retries retry.Config
		extra   []upstream.MethodConfig
		want    []string // the entries as JSON, in order
	}{
		{"timeouts and retries", retry.Config{}, nil, []string{
			`{"name":[{"service":"a.S"}],"timeout":"10s"}`,
			`{"name":[{"service":"a.S","method":"Get"}],"timeout":"2s",` + retried + `}`,
			`{"name":[{"service":"a.S","method":"Put"}],"timeout":"1.5s"}`,
			`{"name":[{"service":"b.T"}],"timeout":"10s"}`,
			`{"name":[{"service":"b.T","method":"Watch"}],"timeout":"300s"}`,
		}},
		{"retries off", retry.Config{MaxAttempts: 1}, nil, []string{
			`{"name":[{"service":"a.S"}],"timeout":"10s"}`,
			`{"name":[{"service":"a.S","method":"Get"}],"timeout":"2s"}`,
			`{"name":[{"service":"a.S","method":"Put"}],"timeout":"1.5s"}`,
			`{"name":[{"service":"b.T"}],"timeout":"10s"}`,
			`{"name":[{"service":"b.T","method":"Watch"}],"timeout":"300s"}`,
		}},
		{"extra entries replace what they name", retry.Config{}, []upstream.MethodConfig{
			{Name: []upstream.MethodName{{Service: "a.S", Method: "Get"}, {Service: "b.T"}}, Timeout: "1s"},
		}, []string{
			`{"name":[{"service":"a.S"}],"timeout":"10s"}`,
			`{"name":[{"service":"a.S","method":"Put"}],"timeout":"1.5s"}`,
			`{"name":[{"service":"b.T","method":"Watch"}],"timeout":"300s"}`,
			`{"name":[{"service":"a.S","method":"Get"},{"service":"b.T"}],"timeout":"1s"}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := methodConfigs(routes, []string{"a.S", "b.T"}, 10*time.Second, tt.retries, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, mc := range got {
				b, err := json.Marshal(mc)
				if err != nil {
					t.Fatal(err)
				}
				lines = append(lines, string(b))
			}
			if g, w := strings.Join(lines, "\n"), strings.Join(tt.want, "\n"); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
	if _, err := methodConfigs([]policy.Route{{RPC: "a.S.Get", HTTPMethod: "GET", Path: "/x"}}, nil, time.Second, retry.Config{}, nil); err == nil {
		t.Error("a malformed RPC name was accepted")
	}
}
