// Package typed decodes rendered objects into client-go's typed API objects (k8s.io/api of the
// same release as the schemas), strictly: an unknown or duplicate field is an error, as the API
// server's strict field validation (kubectl apply --validate=strict) would report it.
package typed

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
)

var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// Decode returns the typed object of a JSON (or YAML) document; its kind must be one of the
// built-in kinds client-go knows.
func Decode(doc []byte) (runtime.Object, error) {
	obj, gvk, err := strict.Decode(doc, nil, nil)
	if err != nil {
		if gvk != nil {
			return nil, fmt.Errorf("%s: %w", gvk.Kind, err)
		}
		return nil, err
	}
	return obj, nil
}
