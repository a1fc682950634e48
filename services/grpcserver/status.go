package grpcserver

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Violation is one invalid request field: Field is its path ("items[1].quantity"), Description
// says what is wrong ("must be between 1 and 1000").
type Violation struct {
	Field       string
	Description string
}

// InvalidArgument returns an INVALID_ARGUMENT error "field: description" with a BadRequest
// detail naming the field.
func InvalidArgument(field, description string) error {
	return FieldViolations(Violation{Field: field, Description: description})
}

// FieldViolations returns an INVALID_ARGUMENT error whose message is the first violation
// ("field: description") and whose BadRequest detail lists them all. It needs at least one.
func FieldViolations(vs ...Violation) error {
	if len(vs) == 0 {
		return status.Error(codes.InvalidArgument, "invalid argument")
	}
	br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, 0, len(vs))}
	for _, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	st := status.New(codes.InvalidArgument, fmt.Sprintf("%s: %s", vs[0].Field, vs[0].Description))
	if withDetail, err := st.WithDetails(br); err == nil {
		st = withDetail
	}
	return st.Err()
}

// Internal logs err with the RPC method (when ctx is a server context) and what failed, and
// returns INTERNAL with a generic message: internal error text never reaches a client.
func Internal(ctx context.Context, log *slog.Logger, what string, err error) error {
	method, _ := grpc.Method(ctx)
	log.ErrorContext(ctx, "internal error", "method", method, "op", what, "err", err)
	return status.Error(codes.Internal, "internal error")
}
