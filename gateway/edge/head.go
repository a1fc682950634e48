package edge

import "net/http"

// HeadAsGet serves a HEAD request as the GET of the same path, as RFC 9110 asks of a server:
// the stages and the route see a GET, and net/http, which still knows the request as a HEAD,
// sends the GET's status and headers (Content-Length included) without the body. Other
// methods pass untouched.
func HeadAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.WithContext(r.Context()) // a shallow copy: the server's own request stays a HEAD
			r.Method = http.MethodGet
		}
		next.ServeHTTP(w, r)
	})
}
