package openapi

import (
	"bytes"
	"embed"
	"net/http"
	"time"
)

// The paths the gateway serves the reference at.
const (
	// PathDocument serves the OpenAPI document (application/json).
	PathDocument = "/openapi.json"
	// PathUI serves the Swagger UI page; its assets are the paths below.
	PathUI = "/docs"
	// PathUIInit, PathUIBundle and PathUICSS are the page's assets.
	PathUIInit   = PathUI + "/init.js"
	PathUIBundle = PathUI + "/swagger-ui-bundle.js"
	PathUICSS    = PathUI + "/swagger-ui.css"
)

// ContentSecurityPolicy is sent with every answer of the reference: only the gateway's own
// scripts, styles, images and requests (Swagger UI's icons are data: images), nothing framed,
// no inline script.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

//go:embed ui/index.html ui/init.js ui/swagger-ui-bundle.js ui/swagger-ui.css
var ui embed.FS

// asset is one file the reference serves, with its entity tag.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets are the UI's files by path: the page at PathUI, the rest under it.
var assets = func() map[string]asset {
	files := map[string]struct{ file, contentType string }{
		PathUI:       {"ui/index.html", "text/html; charset=utf-8"},
		PathUIInit:   {"ui/init.js", "text/javascript; charset=utf-8"},
		PathUIBundle: {"ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
		PathUICSS:    {"ui/swagger-ui.css", "text/css; charset=utf-8"},
	}
	out := make(map[string]asset, len(files))
	for path, f := range files {
		b, err := ui.ReadFile(f.file)
		if err != nil {
			panic("openapi: embedded " + f.file + ": " + err.Error()) // the embed directive lists it
		}
		out[path] = asset{body: b, contentType: f.contentType, etag: etag(b)}
	}
	return out
}()

// IsPath reports whether the reference answers path: PathDocument, PathUI or one of its assets.
func IsPath(path string) bool {
	if path == PathDocument {
		return true
	}
	_, ok := assets[path]
	return ok
}

// ServeUI answers GET and HEAD of PathUI and its assets (404 for another path under it), with a
// strong ETag (304 on a matching If-None-Match) and the Content-Security-Policy. The caller
// answers other methods.
func ServeUI(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	serve(w, r, a.body, a.contentType, a.etag)
}

// ServeHTTP answers GET and HEAD of the document (PathDocument), like ServeUI.
func (d *Document) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serve(w, r, d.JSON, "application/json", d.ETag)
}

func serve(w http.ResponseWriter, r *http.Request, body []byte, contentType, etag string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache") // revalidate: a reload or an upgrade changes it
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body)) // HEAD, If-None-Match, Range
}
