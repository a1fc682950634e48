package server

import (
	"bytes"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
)

// FuzzCreateOrderBody sends arbitrary bytes as a JSON body through the whole gateway: the answer
// is the upstream's 200, or a 400 INVALID_ARGUMENT google.rpc.Status (413 past the limit), never
// a 5xx and never another shape.
func FuzzCreateOrderBody(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"items":[{"sku":"a","quantity":1}],"paymentMethod":"pm_card_ok"}`, `{"items":`, `[]`, `null`,
		`{"items":[{"quantity":"x"}]}`, `{"customer_id":"m"}`, `{"items":[{"sku":"a","quantity":1e99}]}`,
		"\xff\xfe", `{"payment_method":"\u0000"}`, `{"items":[],"items":[]}`,
	} {
		f.Add([]byte(s))
	}
	be := startBackend(f)
	gw := startGateway(f, baseYAML(be.addr, "limits: {max_body_bytes: 4096}\ndefaults: {rate_limit: {requests: 1000000, per: 1s}}\n"), Options{AccessLog: discardLogger()})
	gw.waitReady(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		h := customer()
		h.Set("Content-Type", "application/json")
		r := do(t, nil, "POST", gw.url+"/v1/orders", bytes.NewReader(body), h)
		switch r.status {
		case http.StatusOK:
			return
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if code, msg, _ := r.rpcStatus(t); codes.Code(code) != codes.InvalidArgument {
				t.Fatalf("%d with code %v (%q) for body %q", r.status, codes.Code(code), msg, body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", r.status, body, r.body)
		}
	})
}
