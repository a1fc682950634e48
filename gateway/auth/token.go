package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reasons a token is refused before any key is looked up. They never reach a client: every one
// of them is answered "invalid token".
var (
	errMalformed   = errors.New("malformed token")
	errDuplicate   = errors.New("duplicate JSON member in token")
	errCrit        = errors.New("token has a crit header")
	errBadKID      = errors.New("kid is not a short printable string")
	errUnknownIss  = errors.New("no source for the token's issuer")
	errNoKID       = errors.New("token has no kid and its source holds several keys")
	errUnknownKID  = errors.New("unknown kid")
	errKeyMismatch = errors.New("key type does not match alg")
	errBadSubject  = errors.New("sub is missing, empty, not UTF-8, or holds the namespace separator")
	errBadRole     = errors.New("a role is empty, holds ',' or has surrounding space")
	errBadRoles    = errors.New("roles claim is not an array of strings")
)

// maxKIDBytes bounds the kid header; longer ones are refused before any lookup.
const maxKIDBytes = 256

// b64 decodes JWS segments: unpadded base64url with canonical trailing bits (RFC 7515).
var b64 = base64.RawURLEncoding.Strict()

// header is what the gateway reads of a JWS header before verification.
type header struct {
	alg    string
	kid    string
	hasKID bool
}

// inspect checks what golang-jwt does not: three segments of strict base64url, JSON objects
// without duplicate members at any depth (encoding/json keeps the last of `"sub":"a","sub":"b"`,
// so a token whose signer and verifier disagree on the subject is refused), no `crit` header,
// and a kid that is a short printable string when present. It returns the header fields and the
// payload's iss, which picks the source. jku, x5u, jwk and x5c are never read.
func inspect(token string) (header, string, error) {
	var h header
	first := strings.IndexByte(token, '.')
	if first < 0 {
		return h, "", errMalformed
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return h, "", errMalformed
	}
	rawHeader, err := b64.DecodeString(token[:first])
	if err != nil {
		return h, "", errMalformed
	}
	rawPayload, err := b64.DecodeString(rest[:second])
	if err != nil {
		return h, "", errMalformed
	}
	if _, err := b64.DecodeString(rest[second+1:]); err != nil {
		return h, "", errMalformed
	}
	if err := checkObject(rawHeader); err != nil {
		return h, "", err
	}
	if err := checkObject(rawPayload); err != nil {
		return h, "", err
	}

	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(rawHeader, &hdr); err != nil {
		return h, "", errMalformed
	}
	if _, ok := hdr["crit"]; ok {
		return h, "", errCrit
	}
	if err := json.Unmarshal(hdr["alg"], &h.alg); err != nil || h.alg == "" {
		return h, "", errMalformed
	}
	if raw, ok := hdr["kid"]; ok {
		if err := json.Unmarshal(raw, &h.kid); err != nil || !validKID(h.kid) {
			return h, "", errBadKID
		}
		h.hasKID = true
	}

	var payload struct {
		Iss json.RawMessage `json:"iss"`
	}
	if err := json.Unmarshal(rawPayload, &payload); err != nil {
		return h, "", errMalformed
	}
	var iss string
	if len(payload.Iss) > 0 {
		if err := json.Unmarshal(payload.Iss, &iss); err != nil {
			return h, "", errMalformed
		}
	}
	return h, iss, nil
}

// validKID accepts 1..maxKIDBytes printable ASCII characters.
func validKID(kid string) bool {
	if kid == "" || len(kid) > maxKIDBytes {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < 0x21 || kid[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkObject reports whether data is exactly one JSON object whose objects, at any depth, have
// no duplicate member names. Names are compared as encoding/json matches them to struct
// fields, case-insensitively (`"sub"` and `"SUB"`, or `"ſub"`, are the same claim to it), so
// that no other reader of the token can see another subject than the gateway did.
//
// json.Valid checks the syntax first; the walk then only finds where names and values start
// and end, without building tokens (a verification pays it on every cache miss).
func checkObject(data []byte) error {
	if !json.Valid(data) {
		return errMalformed
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return errMalformed
	}
	_, err := walkValue(data, i, 1)
	return err
}

// walkValue walks the valid JSON value that starts at data[i] and returns the index after it.
func walkValue(data []byte, i, depth int) (int, error) {
	switch data[i] {
	case '{':
		if depth > maxDepth {
			return 0, errMalformed
		}
		var names []string
		for i = skipSpace(data, i+1); data[i] != '}'; i = skipSpace(data, i) {
			if data[i] == ',' {
				i = skipSpace(data, i+1)
			}
			end := stringEnd(data, i)
			name := foldName(unquote(data[i:end]))
			if slices.Contains(names, name) {
				return 0, errDuplicate
			}
			names = append(names, name)
			i = skipSpace(data, skipSpace(data, end)+1) // past the colon
			var err error
			if i, err = walkValue(data, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i + 1, nil
	case '[':
		if depth > maxDepth {
			return 0, errMalformed
		}
		for i = skipSpace(data, i+1); data[i] != ']'; i = skipSpace(data, i) {
			if data[i] == ',' {
				i = skipSpace(data, i+1)
			}
			var err error
			if i, err = walkValue(data, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i + 1, nil
	case '"':
		return stringEnd(data, i), nil
	default: // number, true, false, null
		for i < len(data) && !strings.ContainsRune(",]} \t\r\n", rune(data[i])) {
			i++
		}
		return i, nil
	}
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// stringEnd returns the index after the valid JSON string that starts at data[i].
func stringEnd(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// unquote returns the text of a valid JSON string literal.
func unquote(lit []byte) string {
	if bytes.IndexByte(lit, '\\') < 0 {
		return string(lit[1 : len(lit)-1])
	}
	var s string
	_ = json.Unmarshal(lit, &s) // valid: checked by json.Valid
	return s
}

// foldName folds name as encoding/json does (ASCII upper case, and for other runes the
// smallest rune of their case-fold orbit), so equal results mean json would match either name
// to the same field.
func foldName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}

// maxDepth bounds the nesting checkObject follows; tokens are capped in size anyway.
const maxDepth = 32
