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
