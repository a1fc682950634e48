package httperror

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		st         *status.Status
		wantStatus int
		wantCode   int
		wantMsg    string
	}{
		{"invalid argument", status.New(codes.InvalidArgument, "items: required"), 400, 3, "items: required"},
		{"unauthenticated", status.New(codes.Unauthenticated, "token expired"), 401, 16, "token expired"},
		{"permission denied", status.New(codes.PermissionDenied, "missing role"), 403, 7, "missing role"},
		{"not found", status.New(codes.NotFound, "order not found"), 404, 5, "order not found"},
		{"failed precondition", status.New(codes.FailedPrecondition, "not pending"), 400, 9, "not pending"},
		{"resource exhausted", status.New(codes.ResourceExhausted, "slow down"), 429, 8, "slow down"},
		{"unavailable", status.New(codes.Unavailable, "upstream unavailable"), 503, 14, "upstream unavailable"},
		{"deadline", status.New(codes.DeadlineExceeded, "upstream timeout"), 504, 4, "upstream timeout"},
		{"internal sanitized", Sanitize(status.New(codes.Internal, "dial tcp 10.0.0.7:9000: refused")), 500, 13, GenericInternalMessage},
		{"unknown sanitized", Sanitize(status.New(codes.Unknown, "panic: boom")), 500, 13, GenericInternalMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Write(rec, tt.st)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body struct {
				Code    int               `json:"code"`
				Message string            `json:"message"`
				Details []json.RawMessage `json:"details"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Code != tt.wantCode || body.Message != tt.wantMsg || body.Details == nil {
				t.Errorf("body = %+v, want code %d message %q and a details array", body, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestWriteWithStatusAndDetails(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	st := WithDetails(status.New(codes.ResourceExhausted, "rate limit exceeded"),
		&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
	WriteWithStatus(rec, http.StatusTooManyRequests, st)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	details, _ := body["details"].([]any)
	if len(details) != 1 {
		t.Fatalf("details = %v, want one RetryInfo", body["details"])
	}
	d := details[0].(map[string]any)
	if d["@type"] != "type.googleapis.com/google.rpc.RetryInfo" || d["retryDelay"] != "1.500s" {
		t.Errorf("detail = %v", d)
	}
}
