package sse

import (
	"bytes"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// Marshaler frames the messages of a stream as server-sent events for grpc-gateway's
// ForwardResponseStream; register it on the mux under MIME (the stage sets the Accept header
// to exactly that for the streams it serves as events). JSON marshals the payloads; every
// other use (a unary answer, an error before the first event) is JSON's, with JSON's
// Content-Type.
//
// A message becomes one "data:" event, the whole frame in one Write (Delimiter is empty), so
// the stage's writer can number it and never interleave a heartbeat inside it. A stream's
// error chunk becomes the bare google.rpc.Status JSON: the stage's writer frames it as an
// error event once events have begun, and writes it as the plain error body otherwise.
type Marshaler struct {
	runtime.Marshaler
}

// Marshal frames {"result": m} as a data event and {"error": st} as st's JSON; anything else
// is JSON's.
func (m Marshaler) Marshal(v any) ([]byte, error) {
	switch c := v.(type) {
	case map[string]any:
		if r, ok := c["result"]; ok && len(c) == 1 {
			b, err := m.Marshaler.Marshal(r)
			if err != nil {
				return nil, err
			}
			return appendEvent(nil, "", b), nil
		}
	case map[string]proto.Message:
		if e, ok := c["error"]; ok && len(c) == 1 {
			return m.Marshaler.Marshal(e)
		}
	}
	return m.Marshaler.Marshal(v)
}

// Delimiter is empty: each event carries its own terminating blank line.
func (Marshaler) Delimiter() []byte { return nil }

// StreamContentType is MIME.
func (Marshaler) StreamContentType(any) string { return MIME }

var dataPrefix = []byte("data: ")

// appendEvent appends to dst one event of the given type ("" for the default, message) whose
// data is payload, one "data:" line per line of payload, and the blank line that ends it.
func appendEvent(dst []byte, event string, payload []byte) []byte {
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, event...)
		dst = append(dst, '\n')
	}
	for {
		line, rest, more := bytes.Cut(payload, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		dst = append(dst, dataPrefix...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if !more {
			break
		}
		payload = rest
	}
	return append(dst, '\n')
}
