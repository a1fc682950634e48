package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReasonIdempotencyKeyReused is the errdetails.ErrorInfo reason with which the order service
// refuses an Idempotency-Key reused with another body; the gateway answers it with 422.
const ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

// HeaderFallback marks a static fallback answer.
const HeaderFallback = "X-Gateway-Fallback"

// The messages that replace upstream text a client must not see (it may carry addresses).
const (
	msgUnavailable = "service unavailable"
	msgDeadline    = "upstream deadline exceeded"
	msgCanceled    = "request canceled"
)

// errorHandler is the mux's error handler: every error of a routed request leaves here, once,
// as a google.rpc.Status through httperror.
func errorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	// A body cut by the limit surfaces as the decoder's INVALID_ARGUMENT: it is a 413.
	var mbe *http.MaxBytesError
	if edge.BodyTooLarge(ctx) || errors.As(err, &mbe) {
		limit := int64(0)
		if mbe != nil {
			limit = mbe.Limit
		}
		msg := "request body too large"
		if limit > 0 {
			msg = edge.TooLargeMessage(limit)
		}
		w.Header().Set("Connection", "close")
		httperror.WriteWithStatus(w, http.StatusRequestEntityTooLarge, status.New(codes.InvalidArgument, msg))
		return
	}
	if berr := edge.BodyReadError(ctx); berr != nil {
		w.Header().Set("Connection", "close") // the rest of the body may never come
		var ne net.Error
		if errors.As(berr, &ne) && ne.Timeout() {
			httperror.WriteWithStatus(w, http.StatusRequestTimeout, status.New(codes.InvalidArgument, "request body not received in time"))
			return
		}
		httperror.WriteWithStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "request body could not be read"))
		return
	}
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		httperror.WriteWithStatus(w, hse.HTTPStatus, publicStatus(status.Convert(hse.Err)))
		return
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.Canceled:
		if dst := drainingStatus(ctx); dst != nil { // a stream Shutdown ended before its first message
			httperror.Write(w, dst)
			return
		}
	case codes.Unavailable:
		if rt := policy.FromContext(ctx); rt != nil && rt.Policy.Fallback != nil {
			writeFallback(w, rt.Policy.Fallback)
			return
		}
	}
	// The order service signals a reused Idempotency-Key with an ErrorInfo reason, whatever code.
	if hasReason(st, ReasonIdempotencyKeyReused) {
		httperror.WriteWithStatus(w, http.StatusUnprocessableEntity, st)
		return
	}
	httperror.Write(w, publicStatus(st))
}

// streamErrorHandler gives the final {"error": ...} chunk of a stream that failed after its
// first message (one refused before it fails the call itself: see refuseEarly).
func streamErrorHandler(ctx context.Context, err error) *status.Status {
	if st := drainingStatus(ctx); st != nil { // Shutdown ended the stream
		return st
	}
	return publicStatus(status.Convert(err))
}

// publicStatus is st as a client may see it: INTERNAL, UNKNOWN and DATA_LOSS sanitized, and the
// transport's text of UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED (addresses, dial errors)
// replaced.
func publicStatus(st *status.Status) *status.Status {
	switch st.Code() {
	case codes.Unavailable:
		return status.New(codes.Unavailable, msgUnavailable)
	case codes.DeadlineExceeded:
		return status.New(codes.DeadlineExceeded, msgDeadline)
	case codes.Canceled:
		return status.New(codes.Canceled, msgCanceled)
	}
	return httperror.Sanitize(st)
}

func hasReason(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == reason {
			return true
		}
	}
	return false
}

func writeFallback(w http.ResponseWriter, fb *policy.Fallback) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderFallback, "true")
	w.WriteHeader(fb.HTTPStatus)
	_, _ = io.WriteString(w, fb.JSONBody)
}

// statusMethodNotAllowed is the 405's status.
var statusMethodNotAllowed = status.New(codes.Unimplemented, "method not allowed on this path")

// methodNotAllowed answers 405 with Allow listing allowed, and HEAD beside GET (a HEAD is
// served as a GET without its body).
func methodNotAllowed(w http.ResponseWriter, allowed []string) {
	if slices.Contains(allowed, http.MethodGet) && !slices.Contains(allowed, http.MethodHead) {
		allowed = append(slices.Clone(allowed), http.MethodHead)
		slices.Sort(allowed)
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
	}
	httperror.WriteWithStatus(w, http.StatusMethodNotAllowed, statusMethodNotAllowed)
}

// routingErrorHandler answers requests no route matched: 404 for an unknown path, 405 with
// Allow for a known path and the wrong method (grpc-gateway's default is 501), 400 for a
// malformed path.
func routingErrorHandler(table *routes.Table) runtime.RoutingErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		switch httpStatus {
		case http.StatusMethodNotAllowed:
			methodNotAllowed(w, table.Allowed(r.URL.Path))
		case http.StatusNotFound:
			httperror.Write(w, status.New(codes.NotFound, "no such path"))
		default:
			httperror.WriteWithStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "malformed request path"))
		}
	}
}
