package shopapi

import _ "embed" // SourceInfo

// SourceInfo is a serialized FileDescriptorSet of proto/ with its source info (the comments that
// protoc-gen-go leaves out of gen/), for the gateway's OpenAPI document (openapi.ParseComments).
// `make generate` writes it (buf build); `make check-generate` checks it is current.
//
//go:embed sourceinfo.binpb
var SourceInfo []byte
