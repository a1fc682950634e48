package storefront

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// required maps the error of the part an answer cannot do without (what, from service dep)
// to the caller's error, and logs it. The dependency's message never reaches the caller.
//
//   - NOT_FOUND stays NOT_FOUND: the order does not exist or the caller may not see it;
//   - INVALID_ARGUMENT stays INVALID_ARGUMENT (the request's own fault), with a message of
//     the storefront's own;
//   - the call's own deadline or cancellation: DEADLINE_EXCEEDED or CANCELLED (a CANCELLED
//     from the dependency while the call goes on is a connection closing: UNAVAILABLE);
//   - DEADLINE_EXCEEDED from the dependency: DEADLINE_EXCEEDED;
//   - UNAUTHENTICATED or PERMISSION_DENIED: the dependency refused the delegated passport
//     (the route's delegates do not name it): INTERNAL, a deployment fault;
//   - anything else: UNAVAILABLE.
func (s *Service) required(ctx context.Context, dep, what string, err error) error {
	st := status.Convert(err)
	code := st.Code()
	switch {
	case ctx.Err() != nil: // the call's own deadline or cancellation, whatever the dependency said
		code = status.FromContextError(ctx.Err()).Code()
	case code == codes.Canceled: // a dependency connection closing, not the caller going away
		code = codes.Unavailable
	}
	method, _ := grpc.Method(ctx)
	level := slog.LevelWarn
	var out error
	switch code {
	case codes.NotFound:
		level, out = slog.LevelDebug, status.Error(codes.NotFound, what+" not found")
	case codes.InvalidArgument:
		level, out = slog.LevelDebug, status.Error(codes.InvalidArgument, "invalid "+what+" request")
	case codes.DeadlineExceeded:
		out = status.Error(codes.DeadlineExceeded, dep+" service too slow")
	case codes.Canceled:
		level, out = slog.LevelDebug, status.Error(codes.Canceled, "call cancelled")
	case codes.Unauthenticated, codes.PermissionDenied:
		level, out = slog.LevelError, status.Error(codes.Internal, "internal error")
	default:
		out = status.Error(codes.Unavailable, dep+" service unavailable")
	}
	s.opts.Logger.Log(ctx, level, "dependency failed", "method", method, "dependency", dep, "part", what, "code", st.Code().String(), "err", st.Message())
	return out
}

// optional logs the failure of an optional part, which the answer will name as missing.
func (s *Service) optional(ctx context.Context, dep, part string, err error) {
	method, _ := grpc.Method(ctx)
	level := slog.LevelWarn
	if errors.Is(ctx.Err(), context.Canceled) {
		level = slog.LevelDebug // the caller went away
	}
	st := status.Convert(err)
	s.opts.Logger.Log(ctx, level, "partial answer", "method", method, "dependency", dep, "part", part, "code", st.Code().String(), "err", st.Message())
}
