package server

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// refuseEarly is a stream client interceptor for server-streaming calls: once the request is
// sent (CloseSend, which the generated client calls before it returns the stream), it waits
// for the stream's response headers, as the generated handler does right after anyway. A
// stream that ends without headers sent no message, so its status is the whole answer: the
// call then fails with it, and the client gets the mapped HTTP status with a google.rpc.Status
// body, as for a unary call, instead of a {"error": ...} stream chunk under a 200. A :watch of
// an unknown or someone else's order is a plain 404.
func refuseEarly(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || desc.ClientStreams || !desc.ServerStreams {
		return cs, err
	}
	return earlyRefusal{cs}, nil
}

type earlyRefusal struct{ grpc.ClientStream }

func (s earlyRefusal) CloseSend() error {
	if err := s.ClientStream.CloseSend(); err != nil {
		return err
	}
	md, err := s.Header()
	if err != nil {
		return err
	}
	if md == nil { // ended without headers: RecvMsg decodes nothing and returns the status
		if err := s.RecvMsg(&emptypb.Empty{}); err != io.EOF {
			return err
		}
	}
	return nil
}
