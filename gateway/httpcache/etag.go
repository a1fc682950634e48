package httpcache

import (
	"strings"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// ETag returns the strong entity tag of a body: the 64-bit xxhash of its bytes in hex,
// quoted ("\"9f86d081884c7d65\""). xxhash: a few nanoseconds for a typical answer, already
// linked in (the Prometheus client uses it); a tag names bytes for a cache, it is no
// security boundary, so a cryptographic hash would only cost more.
func ETag(body []byte) string {
	const hex = "0123456789abcdef"
	var b [18]byte
	b[0], b[17] = '"', '"'
	h := xxhash.Sum64(body)
	for i := 16; i >= 1; i-- {
		b[i] = hex[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

// etagValue is ETag(body) as a header value, made in one allocation.
func etagValue(body []byte) []string {
	v := new(struct {
		val [1]string
		buf [18]byte
	})
	const hex = "0123456789abcdef"
	v.buf[0], v.buf[17] = '"', '"'
	h := xxhash.Sum64(body)
	for i := 16; i >= 1; i-- {
		v.buf[i] = hex[h&0xf]
		h >>= 4
	}
	v.val[0] = unsafe.String(&v.buf[0], len(v.buf)) // v.buf is never written again
	return v.val[:]
}

// NoneMatch reports whether a request's If-None-Match header values match etag, so that
// the answer is 304 Not Modified: "*" matches any current answer, and a list matches when
// one of its entity tags equals etag by the weak comparison (RFC 9110 13.1.2: W/ prefixes
// ignored, the opaque tags compared byte for byte). Malformed members are skipped; a
// malformed header matches nothing.
func NoneMatch(values []string, etag string) bool {
	want := opaque(etag)
	for _, v := range values {
		for {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				rest := strings.TrimLeft(v[1:], " \t")
				if rest == "" || rest[0] == ',' {
					return true
				}
				break // "*" must stand alone
			}
			tag, rest, ok := nextTag(v)
			if !ok {
				break
			}
			if opaque(tag) == want && want != "" {
				return true
			}
			v = rest
		}
	}
	return false
}

// nextTag cuts the entity tag ([W/]"...") at the start of s.
func nextTag(s string) (tag, rest string, ok bool) {
	i := 0
	if strings.HasPrefix(s, "W/") {
		i = 2
	}
	if i >= len(s) || s[i] != '"' {
		return "", "", false
	}
	end := strings.IndexByte(s[i+1:], '"')
	if end < 0 {
		return "", "", false
	}
	end += i + 2
	for _, c := range []byte(s[i+1 : end-1]) {
		if c != 0x21 && (c < 0x23 || c == 0x7f) { // etagc = %x21 / %x23-7E / obs-text
			return "", "", false
		}
	}
	return s[:end], s[end:], true
}

// opaque is the quoted part of an entity tag, without W/.
func opaque(tag string) string { return strings.TrimPrefix(tag, "W/") }
