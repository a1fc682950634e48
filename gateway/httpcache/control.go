package httpcache

import (
	"strconv"

	"github.com/acme/shopgate/gateway/policy"
)

// Cache-Control values.
const (
	// Private is the Cache-Control of every answer to a route that is not public.
	Private = "private, no-store"
	// PublicRevalidate is a public route's Cache-Control when its max_age is 0 (the default).
	PublicRevalidate = "public, max-age=0, must-revalidate"
)

// The header values of the two common Cache-Controls, shared by every answer (net/http only
// reads them; an append to a full slice copies it): no allocation per request.
var (
	privateValue          = []string{Private}
	publicRevalidateValue = []string{PublicRevalidate}
)

// cacheControlValue is CacheControl(rt) as a header value.
func cacheControlValue(rt *policy.Route) []string {
	switch cc := CacheControl(rt); cc {
	case Private:
		return privateValue
	case PublicRevalidate:
		return publicRevalidateValue
	default:
		return []string{cc}
	}
}

// CacheControl returns the Cache-Control of a 200 GET answer of rt.
func CacheControl(rt *policy.Route) string {
	if rt == nil || rt.Policy.Auth != policy.AuthNone {
		return Private
	}
	secs := int64(rt.Policy.Cache.MaxAge.Seconds())
	if secs <= 0 {
		return PublicRevalidate
	}
	return "public, max-age=" + strconv.FormatInt(secs, 10)
}
