// Package httperror writes every error the gateway sends to a client, in one format: a
// google.rpc.Status as JSON ({"code": 3, "message": "...", "details": [...]}) with
// Content-Type application/json and the HTTP status of the public contract (shared/API.md).
//
// Edge middleware, policy stages and the grpc-gateway error handlers all write through Write, so
// that the format and the code-to-status table live in one place.
package httperror

import (
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/protoadapt"
)

// GenericInternalMessage replaces the text of INTERNAL, UNKNOWN and DATA_LOSS errors before
// they reach a client: upstream error text may carry addresses, queries or stack traces.
const GenericInternalMessage = "internal error"

// marshaler writes the body; EmitUnpopulated keeps "details": [] so clients see one shape.
var marshaler = protojson.MarshalOptions{EmitUnpopulated: true}

// HTTPStatus is the HTTP status of a gRPC code, as in the contract's table (grpc-gateway's
// mapping: INVALID_ARGUMENT and FAILED_PRECONDITION 400, UNAUTHENTICATED 401, PERMISSION_DENIED
// 403, NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, ...).
func HTTPStatus(c codes.Code) int { return runtime.HTTPStatusFromCode(c) }

// Sanitize returns st with the message of INTERNAL, UNKNOWN and DATA_LOSS replaced by
// GenericInternalMessage and their details dropped; other statuses are returned unchanged.
func Sanitize(st *status.Status) *status.Status {
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return status.New(codes.Internal, GenericInternalMessage)
	}
	return st
}

// Write sends st with the HTTP status of its code.
func Write(w http.ResponseWriter, st *status.Status) {
	WriteWithStatus(w, HTTPStatus(st.Code()), st)
}

// Refuse sends st, with the HTTP status of its code, for a request refused before its body was
// read (authentication, rate limit, IP rules). An HTTP/1 request that has a body is answered
// with Connection: close: otherwise net/http would read up to 256 KiB of the unread body before
// sending the answer, and a client that stalls its body would hold the refusal back until the
// server's read timeout.
func Refuse(w http.ResponseWriter, r *http.Request, st *status.Status) {
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	Write(w, st)
}

// WriteWithStatus sends st with an explicit HTTP status, for the rows of the contract that have
// no gRPC code of their own (405, 413, 422).
func WriteWithStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	body, err := marshaler.Marshal(st.Proto())
	if err != nil { // A status with an unmarshalable detail: send it without details.
		body, _ = marshaler.Marshal(status.New(st.Code(), st.Message()).Proto())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Content-Encoding")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// WithDetails returns st with details attached, or st itself when a detail cannot be attached.
func WithDetails(st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st
	}
	return withDetails
}
