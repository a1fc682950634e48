package edge

import (
	"io"
	"net/http"
	"strconv"

	"github.com/acme/shopgate/gateway/httperror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BodyLimit refuses a body larger than max bytes with 413: at once when Content-Length says so,
// and for a chunked body when the reader crosses the limit (the read fails, BodyTooLarge turns
// true, and the gateway's error handler answers 413). max <= 0: no limit.
func BodyLimit(max int64) func(http.Handler) http.Handler {
	msg := TooLargeMessage(max)
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				w.Header().Set("Connection", "close")
				httperror.WriteWithStatus(w, http.StatusRequestEntityTooLarge, status.New(codes.InvalidArgument, msg))
				return
			}
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			s, w, r := ensure(w, r)
			s.body = limitedBody{rc: r.Body, left: max, limit: max, state: s}
			r.Body = &s.body
			next.ServeHTTP(w, r)
		})
	}
}

// TooLargeMessage is the message of the 413 a cut chunked body gets.
func TooLargeMessage(max int64) string {
	return "request body larger than " + strconv.FormatInt(max, 10) + " bytes"
}

// limitedBody is http.MaxBytesReader that also records the overflow in the request's State.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64 // bytes still allowed
	limit int64
	state *State
	err   error
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Read one byte more than allowed to tell "exactly at the limit" from "over".
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) <= l.left {
		l.left -= int64(n)
		l.err = err
		if err != nil && err != io.EOF {
			l.state.bodyErr = err // a stalled or broken body: the error handler says so, not the decoder
		}
		return n, err
	}
	n = int(l.left)
	l.left = 0
	l.state.bodyTooLarge = true
	l.err = &http.MaxBytesError{Limit: l.limit}
	return n, l.err
}

func (l *limitedBody) Close() error { return l.rc.Close() }
