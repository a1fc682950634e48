package server

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/acme/shopgate/gateway/sse"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

// marshaler is protojson: lowerCamelCase out, either spelling in, unknown fields refused
// (400), unpopulated fields emitted so that every response has one shape (as grpc-gateway's
// default does), and a request body that holds anything but whitespace after its JSON value
// refused (400): grpc-gateway's own decoder reads one value and ignores what follows.
//
// A server stream's answer is newline-delimited JSON, Content-Type application/x-ndjson.
var marshaler = ndjson{&runtime.HTTPBodyMarshaler{Marshaler: &strictJSON{JSONPb: runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}}}

// sseMarshaler frames a server stream as server-sent events (gateway/sse), the payloads as
// marshaler writes them.
var sseMarshaler = sse.Marshaler{Marshaler: marshaler}

// ndjson gives a stream of the JSON marshaler its own Content-Type.
type ndjson struct {
	*runtime.HTTPBodyMarshaler
}

// StreamContentType is application/x-ndjson.
func (ndjson) StreamContentType(any) string { return sse.NDJSONContentType }

// strictJSON is runtime.JSONPb whose decoder refuses trailing data.
type strictJSON struct {
	runtime.JSONPb
}

// NewDecoder returns a decoder of one JSON value that must end the stream.
func (j *strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	return strictDecoder{DecoderWrapper: runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: j.UnmarshalOptions}}
}

// errTrailingData is the 400's text (the generated handler puts it in an INVALID_ARGUMENT).
var errTrailingData = errors.New("request body: unexpected data after the JSON value")

type strictDecoder struct {
	runtime.DecoderWrapper
}

// Decode decodes one value into v, then fails unless only whitespace follows it.
func (d strictDecoder) Decode(v any) error {
	if err := d.DecoderWrapper.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}
