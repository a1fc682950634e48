package shopapi

import (
	_ "embed" // SourceInfo

	"github.com/acme/shopgate/gateway/openapi"
)

// SourceInfo is a serialized FileDescriptorSet of proto/ with its source info (the comments that
// protoc-gen-go leaves out of gen/), for the gateway's OpenAPI document (openapi.ParseComments).
// `make generate` writes it (buf build); `make check-generate` checks it is current.
//
//go:embed sourceinfo.binpb
var SourceInfo []byte

// Title is the title of the shop's API reference.
const Title = "Shop API"

// OpenAPI returns the options of the shop's API reference (server.Options.OpenAPI): its title
// and the protos' comments.
func OpenAPI() (openapi.Options, error) {
	comments, err := openapi.ParseComments(SourceInfo)
	if err != nil {
		return openapi.Options{}, err
	}
	return openapi.Options{Title: Title, Comments: comments}, nil
}
