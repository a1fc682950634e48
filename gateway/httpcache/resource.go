package httpcache

import "strings"

// Resource is the resource a request's path names: the path without its custom verb
// ("/v1/orders/o-1:cancel" -> "/v1/orders/o-1") and without a trailing slash.
func Resource(path string) string {
	last := strings.LastIndexByte(path, '/')
	if colon := strings.IndexByte(path[last+1:], ':'); colon >= 0 {
		path = path[:last+1+colon]
	}
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	return path
}

// Resources are what a write to path invalidates: its resource and the collection it
// belongs to (the resource's parent), when it has one below the root.
func Resources(path string) []string {
	res := Resource(path)
	if i := strings.LastIndexByte(res, '/'); i > 0 {
		return []string{res, res[:i]}
	}
	return []string{res}
}
