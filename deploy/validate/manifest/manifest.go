// Package manifest reads a rendered multi-document YAML stream (what `kubectl kustomize`
// prints) into its objects.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one document of the stream.
type Object struct {
	JSON []byte         // the document as JSON
	Map  map[string]any // the same, decoded
	Kind string
	Name string // metadata.name
}

// ID is "Kind/name", how problems name an object.
func (o Object) ID() string { return o.Kind + "/" + o.Name }

// Read splits r into its documents, skipping empty ones. A document that is not a YAML object
// is an error; so is a duplicate key (YAML's last-one-wins would hide a mistake).
func Read(r io.Reader) ([]Object, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []Object
	for i := 1; ; i++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if string(js) == "null" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			return nil, fmt.Errorf("document %d: not an object: %w", i, err)
		}
		o := Object{JSON: js, Map: m}
		o.Kind, _ = m["kind"].(string)
		if md, ok := m["metadata"].(map[string]any); ok {
			o.Name, _ = md["name"].(string)
		}
		out = append(out, o)
	}
}
