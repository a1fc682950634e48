package openapi_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/acme/shopgate/gateway/openapi"
)

func TestSchemas(t *testing.T) {
	doc := thingsDocument(t, "", openapi.Options{})
	const thing = "/components/schemas/test.v1.Thing"
	tests := []struct {
		name, pointer, want string
	}{
		{"string", thing + "/properties/id", `{"type":"string"}`},
		{"int64 is a string, with its comment", thing + "/properties/bigNumber", `{"type":"string","format":"int64","description":"A big number."}`},
		{"uint32 fits an int64", thing + "/properties/small", `{"type":"integer","format":"int64"}`},
		{"double", thing + "/properties/ratio", `{"type":"number","format":"double"}`},
		{"bytes are base64", thing + "/properties/blob", `{"type":"string","format":"byte"}`},
		{"enum by reference, described through allOf", thing + "/properties/kind", `{"allOf":[{"$ref":"#/components/schemas/test.v1.Kind"}],"description":"What kind."}`},
		{"enum component: its value names", "/components/schemas/test.v1.Kind", `{"type":"string","enum":["KIND_UNSPECIFIED","KIND_BIG"]}`},
		{"Timestamp", thing + "/properties/createTime/format", `"date-time"`},
		{"Duration is a string", thing + "/properties/wait/type", `"string"`},
		{"Struct is any object", thing + "/properties/meta", `{"type":"object","additionalProperties":true}`},
		{"Value is any JSON", thing + "/properties/any", `{"description":"Any JSON value."}`},
		{"StringValue is a nullable string", thing + "/properties/note", `{"type":"string","nullable":true}`},
		{"recursive message by reference", thing + "/properties/parent", `{"$ref":"#/components/schemas/test.v1.Thing"}`},
		{"repeated", thing + "/properties/tags", `{"type":"array","items":{"type":"string"}}`},
		{"repeated message", thing + "/properties/children", `{"type":"array","items":{"$ref":"#/components/schemas/test.v1.Thing"}}`},
		{"map", thing + "/properties/counts", `{"type":"object","additionalProperties":{"type":"string","format":"int64"}}`},
		{"message comment", thing + "/description", `"Thing is a thing."`},
		{"the error body", "/components/schemas/google.rpc.Status/properties/code/format", `"int32"`},
		{"no map entry component", "/components/schemas/test.v1.Thing.CountsEntry", `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := at(doc, tt.pointer), js(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %v, want %v", tt.pointer, got, want)
			}
		})
	}
}

func TestParameters(t *testing.T) {
	doc := thingsDocument(t, "", openapi.Options{})
	tests := []struct {
		name, op   string   // op: a pointer to the operation
		params     []string // "in name", in order
		body       string   // the request body's schema, JSON; "" for none
		pathParams string   // the first path parameter's description, when it says more
		bodyProps  []string // the properties of an inline body, sorted
	}{
		{name: "GET: path, then every other scalar and repeated scalar as a query parameter (dotted for nested messages; not maps, repeated messages, Struct or Value; a recursive message once)",
			op: "/paths/~1v1~1things~1{id}/get",
			params: []string{"path id", "query bigNumber", "query small", "query kind", "query createTime", "query wait", "query tags",
				"query filter.status", "query filter.on", "query blob", "query note", "query ratio"}},
		{name: `body "*" without path parameters: the message`, op: "/paths/~1v1~1things/post",
			body: `{"$ref":"#/components/schemas/test.v1.Thing"}`},
		{name: `body "*" with a path parameter: the message without it, inline`, op: "/paths/~1v1~1things~1{id}:do/post",
			params: []string{"path id"}, bodyProps: []string{"any", "bigNumber", "blob", "children", "counts", "createTime", "filter", "kind", "meta",
				"note", "parent", "ratio", "small", "tags", "wait"}},
		{name: `body "*" with a nested path parameter: its message stays in the body; the path and its variable are GET's (OpenAPI forbids two paths of one shape)`,
			op: "/paths/~1v1~1things~1{id}/put", params: []string{"path id"}, body: `{"$ref":"#/components/schemas/test.v1.UpdateRequest"}`,
			pathParams: "Field `thing.id`."},
		{name: "an additional binding", op: "/paths/~1v1~1things~1{id}:do/get",
			params: []string{"path id", "query bigNumber", "query small", "query kind", "query createTime", "query wait", "query tags",
				"query filter.status", "query filter.on", "query blob", "query note", "query ratio"}},
		{name: "body field: that field, the rest in the query; a {name=pattern} variable is one parameter", op: "/paths/~1v1~1{name}/patch",
			params: []string{"path name", "query validateOnly"}, body: `{"$ref":"#/components/schemas/test.v1.Thing"}`,
			pathParams: "Matches `shelves/*/things/*` (slashes included)."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, _ := at(doc, tt.op).(map[string]any)
			if op == nil {
				t.Fatalf("no operation at %s", tt.op)
			}
			var got []string
			ps, _ := op["parameters"].([]any)
			for _, p := range ps {
				m := p.(map[string]any)
				got = append(got, m["in"].(string)+" "+m["name"].(string))
			}
			if !slices.Equal(got, tt.params) {
				t.Errorf("parameters %q, want %q", got, tt.params)
			}
			if tt.body != "" {
				if got, want := at(op, "/requestBody/content/application~1json/schema"), js(t, tt.body); !reflect.DeepEqual(got, want) {
					t.Errorf("body %v, want %v", got, want)
				}
			} else if tt.bodyProps != nil {
				props, _ := at(op, "/requestBody/content/application~1json/schema/properties").(map[string]any)
				var got []string
				for p := range props {
					got = append(got, p)
				}
				slices.Sort(got)
				if !slices.Equal(got, tt.bodyProps) {
					t.Errorf("inline body properties %q, want %q", got, tt.bodyProps)
				}
			} else if op["requestBody"] != nil {
				t.Errorf("unexpected request body %v", op["requestBody"])
			}
			if tt.pathParams != "" {
				if d, _ := at(ps[0], "/description").(string); d != tt.pathParams {
					t.Errorf("path parameter description %q, want %q", d, tt.pathParams)
				}
			}
		})
	}
}

func TestResponses(t *testing.T) {
	doc := thingsDocument(t, "", openapi.Options{})
	tests := []struct{ name, pointer, want string }{
		{"unary: the output message", "/paths/~1v1~1things~1{id}/get/responses/200/content/application~1json/schema",
			`{"$ref":"#/components/schemas/test.v1.Thing"}`},
		{"response_body: that field", "/paths/~1v1~1things~1{id}~1tags/get/responses/200/content/application~1json/schema",
			`{"type":"array","items":{"type":"string"}}`},
		{"server streaming: ndjson of {result, error}", "/paths/~1v1~1things~1{id}:watch/get/responses/200/content/application~1x-ndjson/schema/properties",
			`{"result":{"$ref":"#/components/schemas/test.v1.Thing"},"error":{"$ref":"#/components/schemas/google.rpc.Status"}}`},
		{"server streaming: event-stream too", "/paths/~1v1~1things~1{id}:watch/get/responses/200/content/text~1event-stream/schema/type", `"string"`},
		{"errors are google.rpc.Status", "/components/responses/Unavailable/content/application~1json/schema",
			`{"$ref":"#/components/schemas/google.rpc.Status"}`},
		{"429 says Retry-After", "/components/responses/ResourceExhausted/headers/Retry-After/schema/type", `"integer"`},
		{"operation id", "/paths/~1v1~1things~1{id}/get/operationId", `"Things_Get"`},
		{"additional binding's operation id", "/paths/~1v1~1things~1{id}:do/get/operationId", `"Things_Do_1"`},
		{"summary: the comment's first sentence", "/paths/~1v1~1things~1{id}/get/summary", `"Get returns one thing."`},
		{"summary without a comment: the method", "/paths/~1v1~1things/post/summary", `"Create"`},
		{"tag with the service's comment", "/tags/0", "{\"name\":\"Things\",\"description\":\"`test.v1.Things`: Things keeps things.\\nSecond line.\"}"},
		{"title: the one service", "/info/title", `"Things"`},
		{"version: the package's", "/info/version", `"v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := at(doc, tt.pointer), js(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %v, want %v", tt.pointer, got, want)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	const get = "/paths/~1v1~1things~1{id}/get"
	tests := []struct {
		name      string
		yaml      string
		opts      openapi.Options
		pointer   string
		want      string
		responses []string // the error responses of the GET, when set
	}{
		{name: "required by default: bearer", pointer: get + "/security", want: `[{"bearer":[]}]`,
			responses: []string{"200", "400", "401", "404", "429", "503", "504"}},
		{name: "required, API keys configured: either", opts: openapi.Options{APIKeys: true}, pointer: get + "/security",
			want: `[{"bearer":[]},{"apiKey":[]}]`},
		{name: "API-key scheme in its header", opts: openapi.Options{APIKeys: true}, pointer: "/components/securitySchemes/apiKey",
			want: `{"type":"apiKey","in":"header","name":"X-API-Key","description":"A server-to-server key."}`},
		{name: "no API keys: no API-key scheme", pointer: "/components/securitySchemes/apiKey", want: `null`},
		{name: "optional: an empty alternative", yaml: "routes: {test.v1.Things/Get: {auth: optional}}", pointer: get + "/security",
			want: `[{"bearer":[]},{}]`},
		{name: "none: no security, no 401", yaml: "routes: {test.v1.Things/Get: {auth: none}}", pointer: get + "/security", want: `null`,
			responses: []string{"200", "400", "404", "429", "503", "504"}},
		{name: "roles: the extension and a 403", yaml: "routes: {test.v1.Things/Get: {roles: [admin, staff]}}", pointer: get + "/x-shopgate-roles",
			want: `["admin","staff"]`, responses: []string{"200", "400", "401", "403", "404", "429", "503", "504"}},
		{name: "rate limit from the YAML", yaml: "routes: {test.v1.Things: {rate_limit: {requests: 7, per: 1s}}}", pointer: get + "/x-shopgate-rate-limit",
			want: `{"requests":7,"per":"1s","burst":7}`},
		{name: "default rate limit", pointer: get + "/x-shopgate-rate-limit", want: `{"requests":100,"per":"60s","burst":100}`},
		{name: "timeout from the proto service policy", pointer: get + "/x-shopgate-timeout", want: `"2s"`},
		{name: "timeout from a YAML override", yaml: "routes: {test.v1.Things/Get: {timeout: 250ms}}", pointer: get + "/x-shopgate-timeout", want: `"250ms"`},
		{name: "auth mode", yaml: "routes: {test.v1.Things/Get: {auth: optional}}", pointer: get + "/x-shopgate-auth", want: `"optional"`},
		{name: "the RPC", pointer: get + "/x-shopgate-rpc", want: `"/test.v1.Things/Get"`},
		{name: "idempotent: GET", pointer: get + "/x-shopgate-idempotent", want: `true`},
		{name: "not idempotent: POST", pointer: "/paths/~1v1~1things/post/x-shopgate-idempotent", want: `false`},
		{name: "the policy in words", yaml: "routes: {test.v1.Things/Get: {auth: none}}", pointer: get + "/description",
			want: `"Get returns one thing. Public.\n\n**Auth**: none (public). **Rate limit**: 100 per 60s per caller, bursts of 100. **Timeout**: 2s."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := thingsDocument(t, tt.yaml, tt.opts)
			if got, want := at(doc, tt.pointer), js(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %v, want %v", tt.pointer, got, want)
			}
			if tt.responses != nil {
				rs, _ := at(doc, get+"/responses").(map[string]any)
				var got []string
				for code := range rs {
					got = append(got, code)
				}
				slices.Sort(got)
				if !slices.Equal(got, tt.responses) {
					t.Errorf("responses %q, want %q", got, tt.responses)
				}
			}
		})
	}
}
