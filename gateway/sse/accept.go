package sse

import (
	"strings"
)

// MIME is the media type of server-sent events.
const MIME = "text/event-stream"

// NDJSONContentType is the Content-Type of a stream answered as newline-delimited JSON.
const NDJSONContentType = "application/x-ndjson"

// Accepts reports whether the Accept header values ask for server-sent events: some media
// range is exactly text/event-stream (case-insensitive, parameters other than q ignored) with
// a q above 0, and no explicit application/x-ndjson or application/json range has a higher
// q. Wildcards never choose SSE. A malformed range (no '/', a q that is not an RFC 9110
// qvalue) is skipped, as if the client had not sent it.
func Accepts(values []string) bool {
	sse, other := -1, -1 // the best q (in thousandths) seen for each; -1: not listed
	for _, v := range values {
		for len(v) > 0 {
			var rng string
			rng, v, _ = strings.Cut(v, ",")
			typ, q, ok := mediaRange(rng)
			if !ok {
				continue
			}
			switch {
			case strings.EqualFold(typ, MIME):
				sse = max(sse, q)
			case strings.EqualFold(typ, NDJSONContentType), strings.EqualFold(typ, "application/json"):
				other = max(other, q)
			}
		}
	}
	return sse > 0 && sse >= other
}

// mediaRange parses one element of an Accept list: its type/subtype and its q in
// thousandths (1000 when absent).
func mediaRange(s string) (typ string, q int, ok bool) {
	typ, params, _ := strings.Cut(s, ";")
	typ = strings.TrimSpace(typ)
	if slash := strings.IndexByte(typ, '/'); slash <= 0 || slash == len(typ)-1 {
		return "", 0, false
	}
	q = 1000
	for len(params) > 0 {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		if q, ok = qvalue(strings.TrimSpace(val)); !ok {
			return "", 0, false
		}
		break // parameters after q are accept-ext (RFC 7231); RFC 9110 keeps q last
	}
	return typ, q, true
}

// qvalue parses an RFC 9110 qvalue: "0" ["." 0*3DIGIT] or "1" ["." 0*3"0"], in thousandths.
func qvalue(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	n := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return n, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n += int(c-'0') * scale
		scale /= 10
	}
	if n > 1000 {
		return 0, false
	}
	return n, true
}
