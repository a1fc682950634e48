// Package schema validates Kubernetes objects against the OpenAPI v2 document of a Kubernetes
// release (api/openapi-spec/swagger.json of k8s.io/kubernetes, the schemas the API server
// publishes), offline. Like kubeconform -strict, a field the schema does not declare is an error
// (the API server would drop it, or refuse it under strict field validation), and the two
// types the document describes only by a format are widened to what the API server accepts:
// IntOrString (an integer or a string) and Quantity (a number or a string).
package schema

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

const (
	refPrefix   = "#/definitions/"
	intOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	quantity    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

// Validator holds a Kubernetes OpenAPI document's definitions. Safe for one goroutine at a time.
type Validator struct {
	defs     map[string]map[string]any // raw definitions, by name
	byKind   map[string]string         // "apps/v1, Kind=Deployment" -> definition name
	expanded map[string]*spec.Schema   // definition name -> its schema with every $ref inlined
}

// Load reads a swagger.json (OpenAPI v2) of Kubernetes.
func Load(path string) (*Validator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Swagger     string                    `json:"swagger"`
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Swagger != "2.0" || len(doc.Definitions) == 0 {
		return nil, fmt.Errorf("%s: not an OpenAPI v2 document with definitions", path)
	}
	v := &Validator{defs: doc.Definitions, byKind: map[string]string{}, expanded: map[string]*spec.Schema{}}
	v.defs[intOrString] = map[string]any{"anyOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}}
	v.defs[quantity] = map[string]any{"anyOf": []any{map[string]any{"type": "number"}, map[string]any{"type": "string"}}}
	for name, d := range v.defs {
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			group, _ := m["group"].(string)
			version, _ := m["version"].(string)
			kind, _ := m["kind"].(string)
			v.byKind[kindKey(apiVersion(group, version), kind)] = name
		}
	}
	return v, nil
}

func apiVersion(group, version string) string {
	if group == "" {
		return version
	}
	return group + "/" + version
}

func kindKey(apiVersion, kind string) string { return apiVersion + ", Kind=" + kind }

// Validate checks obj (a decoded JSON object) against the schema of its apiVersion and kind.
// It returns one message per problem, each naming the field; an object of a kind the
// document does not have is a problem too.
func (v *Validator) Validate(obj map[string]any) []string {
	av, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	name, ok := v.byKind[kindKey(av, kind)]
	if !ok {
		return []string{fmt.Sprintf("apiVersion %q kind %q: not a kind of this Kubernetes release", av, kind)}
	}
	s, err := v.schema(name)
	if err != nil {
		return []string{err.Error()}
	}
	res := validate.NewSchemaValidator(s, nil, "", strfmt.Default).Validate(obj)
	var out []string
	for _, e := range res.Errors {
		out = append(out, e.Error())
	}
	sort.Strings(out)
	return out
}

// schema returns the definition name's schema with its references inlined, strict.
func (v *Validator) schema(name string) (*spec.Schema, error) {
	if s, ok := v.expanded[name]; ok {
		return s, nil
	}
	raw, err := v.expand(map[string]any{"$ref": refPrefix + name}, map[string]bool{})
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	s := new(spec.Schema)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("schema of %s: %w", name, err)
	}
	v.expanded[name] = s
	return s, nil
}

// expand returns a copy of node with every $ref replaced by its definition (a definition that
// refers back to itself, such as JSONSchemaProps, accepts anything below the first repetition)
// and every object with declared properties closed to others.
func (v *Validator) expand(node any, stack map[string]bool) (any, error) {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			name, found := strings.CutPrefix(ref, refPrefix)
			if !found || v.defs[name] == nil {
				return nil, fmt.Errorf("unresolvable $ref %q", ref)
			}
			if stack[name] {
				return map[string]any{}, nil
			}
			stack[name] = true
			defer delete(stack, name)
			return v.expand(v.defs[name], stack)
		}
		out := make(map[string]any, len(n)+1)
		for k, val := range n {
			if k == "properties" { // names of fields, not schema keywords
				props := map[string]any{}
				for field, ps := range val.(map[string]any) {
					e, err := v.expand(ps, stack)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", field, err)
					}
					props[field] = e
				}
				out[k] = props
				continue
			}
			e, err := v.expand(val, stack)
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		if _, hasProps := n["properties"]; hasProps {
			if _, open := n["additionalProperties"]; !open && n["x-kubernetes-preserve-unknown-fields"] != true {
				out["additionalProperties"] = false
			}
		}
		return out, nil
	case []any:
		out := make([]any, len(n))
		for i, val := range n {
			e, err := v.expand(val, stack)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	default:
		return node, nil
	}
}
