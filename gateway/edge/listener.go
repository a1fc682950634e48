package edge

import (
	"bytes"
	"net"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// Listener wraps ln so that the answers net/http gives itself, before any handler runs, keep
// the gateway's contract: a request whose headers are over server.max_header_bytes (431), a
// malformed request (400) or an unknown Transfer-Encoding (501) gets a google.rpc.Status JSON
// body with X-Request-Id instead of net/http's plain text. net/http writes those answers straight
// to the connection, in one write, with its own fixed header block; the wrapped connection
// recognises that block and writes the Status instead. Every other write passes untouched.
//
// The connections also watch each request head for both Content-Length and Transfer-Encoding,
// which net/http serves without telling its handlers: install ConnContext as the
// http.Server's ConnContext and ask AmbiguousFraming once per request.
func Listener(ln net.Listener) net.Listener { return statusListener{ln} }

type statusListener struct{ net.Listener }

func (l statusListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &statusConn{Conn: c}, nil
}

// statusConn rewrites net/http's own error answers and watches the request heads for an
// ambiguous framing (framing, AmbiguousFraming).
type statusConn struct {
	net.Conn
	framing framing
}

// NetConn returns the wrapped connection.
func (c *statusConn) NetConn() net.Conn { return c.Conn }

func (c *statusConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.framing.read(p[:n])
	}
	return n, err
}

func (c *statusConn) Write(p []byte) (int, error) {
	if code, ok := serverError(p); ok {
		if _, err := c.Conn.Write(statusAnswer(code)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// serverErrorHeaders is the header block net/http puts on the answers it gives itself
// (net/http's server.go, errorHeaders); the gateway's own answers always carry Date first.
const serverErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// serverError reports whether p is one of net/http's own error answers, and its status code.
func serverError(p []byte) (int, bool) {
	const prefix = "HTTP/1.1 "
	if len(p) < len(prefix)+3 || string(p[:len(prefix)]) != prefix {
		return 0, false
	}
	end := bytes.IndexByte(p, '\r')
	if end < 0 || !bytes.HasPrefix(p[end:], []byte(serverErrorHeaders)) {
		return 0, false
	}
	code, err := strconv.Atoi(string(p[len(prefix) : len(prefix)+3]))
	if err != nil || code < 400 || code > 599 {
		return 0, false
	}
	return code, true
}

// statusAnswer is the whole HTTP/1.1 answer for one of net/http's own errors.
func statusAnswer(code int) []byte {
	var st *status.Status
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		st = status.New(codes.InvalidArgument, "request headers larger than the limit")
	case http.StatusNotImplemented:
		st = status.New(codes.Unimplemented, "unsupported transfer encoding")
	case http.StatusBadRequest:
		st = status.New(codes.InvalidArgument, "malformed request")
	default:
		st = status.New(codes.InvalidArgument, http.StatusText(code))
	}
	body, _ := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(st.Proto())
	b := make([]byte, 0, 256+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"+HeaderRequestID+": "...)
	b = append(b, newRequestID()...)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}
