package openapi

// The OpenAPI 3.0 objects the document uses; only the fields it fills. Maps marshal with sorted
// keys, so the same inputs give the same bytes.

type document struct {
	OpenAPI    string               `json:"openapi"`
	Info       info                 `json:"info"`
	Tags       []tag                `json:"tags,omitempty"`
	Paths      map[string]*pathItem `json:"paths"`
	Components components           `json:"components"`
}

type info struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

type tag struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type pathItem struct {
	Get    *operation `json:"get,omitempty"`
	Put    *operation `json:"put,omitempty"`
	Post   *operation `json:"post,omitempty"`
	Delete *operation `json:"delete,omitempty"`
	Patch  *operation `json:"patch,omitempty"`
	Head   *operation `json:"head,omitempty"`
}

type operation struct {
	Tags        []string               `json:"tags,omitempty"`
	Summary     string                 `json:"summary,omitempty"`
	Description string                 `json:"description,omitempty"`
	OperationID string                 `json:"operationId"`
	Parameters  []*parameter           `json:"parameters,omitempty"`
	RequestBody *requestBody           `json:"requestBody,omitempty"`
	Responses   map[string]*response   `json:"responses"`
	Security    *[]map[string][]string `json:"security,omitempty"`

	XAuth       string     `json:"x-shopgate-auth"`
	XRoles      []string   `json:"x-shopgate-roles,omitempty"`
	XRateLimit  *rateLimit `json:"x-shopgate-rate-limit,omitempty"`
	XTimeout    string     `json:"x-shopgate-timeout,omitempty"`
	XIdempotent bool       `json:"x-shopgate-idempotent"`
	XRPC        string     `json:"x-shopgate-rpc"`
}

// rateLimit is x-shopgate-rate-limit: Requests per Per ("60s") for each caller, bursts of Burst.
type rateLimit struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
	Burst    int    `json:"burst"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *schema `json:"schema"`
}

type requestBody struct {
	Description string                `json:"description,omitempty"`
	Required    bool                  `json:"required,omitempty"`
	Content     map[string]*mediaType `json:"content"`
}

type response struct {
	Ref         string                `json:"$ref,omitempty"`
	Description string                `json:"description,omitempty"`
	Headers     map[string]*header    `json:"headers,omitempty"`
	Content     map[string]*mediaType `json:"content,omitempty"`
}

type header struct {
	Description string  `json:"description,omitempty"`
	Schema      *schema `json:"schema"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type components struct {
	Schemas         map[string]*schema         `json:"schemas"`
	Responses       map[string]*response       `json:"responses,omitempty"`
	SecuritySchemes map[string]*securityScheme `json:"securitySchemes,omitempty"`
}

type securityScheme struct {
	Type         string `json:"type"`
	Description  string `json:"description,omitempty"`
	Scheme       string `json:"scheme,omitempty"`
	BearerFormat string `json:"bearerFormat,omitempty"`
	In           string `json:"in,omitempty"`
	Name         string `json:"name,omitempty"`
}

// schema is an OpenAPI 3.0 Schema Object. Ref excludes every other field (3.0 ignores a $ref's
// siblings): a described reference is an AllOf of one.
type schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	Description          string             `json:"description,omitempty"`
	Enum                 []string           `json:"enum,omitempty"`
	Items                *schema            `json:"items,omitempty"`
	Properties           map[string]*schema `json:"properties,omitempty"`
	AdditionalProperties any                `json:"additionalProperties,omitempty"` // *schema or true
	AllOf                []*schema          `json:"allOf,omitempty"`
	Nullable             bool               `json:"nullable,omitempty"`
	Example              any                `json:"example,omitempty"`
}
