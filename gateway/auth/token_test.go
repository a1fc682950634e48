package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

func TestCheckObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
	}{
		{`{}`, nil},
		{`{"a":1,"b":[1,{"a":2}],"c":{"a":{"b":null}}}`, nil},
		{` {"a":"x"} `, nil},
		{`{"a":1,"a":1}`, errDuplicate},
		{`{"a":1,"\u0061":2}`, errDuplicate},
		{`{"x":[{"a":1,"a":2}]}`, errDuplicate},
		{`{"x":{"y":{"a":1,"a":2}}}`, errDuplicate},
		{`{"sub":"alice","SUB":"admin"}`, errDuplicate}, // encoding/json sets Subject from either
		{`{"sub":"alice","ſub":"admin"}`, errDuplicate}, // long s folds to s
		{`{"kid":"a","Kid":"b"}`, errDuplicate},         // Kelvin sign folds to k
		{`{"sub":"alice","subject":"admin"}`, nil},
		{`[]`, errMalformed},
		{`"x"`, errMalformed},
		{`{"a":1}{"b":2}`, errMalformed},
		{`{"a":1`, errMalformed},
		{`{"a":}`, errMalformed},
		{``, errMalformed},
		{`{"a":` + deep(40) + `}`, errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if err := checkObject([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("checkObject(%s) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func deep(n int) string {
	s := "1"
	for range n {
		s = "[" + s + "]"
	}
	return s
}

// FuzzInspect: inspect never panics, and what it accepts is two JSON objects in strict
// base64url with a string alg.
func FuzzInspect(f *testing.F) {
	enc := base64.RawURLEncoding
	seg := func(s string) string { return enc.EncodeToString([]byte(s)) }
	f.Add(seg(`{"alg":"EdDSA","kid":"k1"}`) + "." + seg(`{"iss":"i","sub":"alice"}`) + "." + seg("sig"))
	f.Add(seg(`{"alg":"none"}`) + "." + seg(`{"sub":"a","sub":"b"}`) + ".")
	f.Add(seg(`{"alg":"RS256","crit":["exp"]}`) + "." + seg(`{}`) + ".AA")
	f.Add(seg(`{"alg":"RS256","kid":7}`) + "." + seg(`{"iss":["x"]}`) + ".")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		h, _, err := inspect(token)
		if err != nil {
			return
		}
		if h.alg == "" {
			t.Fatal("accepted a token without alg")
		}
		if h.hasKID && !validKID(h.kid) {
			t.Fatalf("accepted kid %q", h.kid)
		}
		var parts [3]string
		n := 0
		start := 0
		for i := 0; i <= len(token); i++ {
			if i == len(token) || token[i] == '.' {
				if n == 3 {
					t.Fatal("accepted more than three segments")
				}
				parts[n], n, start = token[start:i], n+1, i+1
			}
		}
		for _, p := range parts[:2] {
			raw, err := enc.Strict().DecodeString(p)
			if err != nil || !json.Valid(raw) {
				t.Fatalf("accepted segment %q", p)
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil {
				t.Fatalf("accepted non-object %q", raw)
			}
		}
	})
}

// refCheckObject is checkObject written the slow, obvious way (encoding/json's tokenizer), the
// reference of FuzzCheckObject.
func refCheckObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return errMalformed
	}
	var members func(depth int) error
	var value func(depth int) error
	members = func(depth int) error {
		if depth > maxDepth {
			return errMalformed
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errMalformed
			}
			name := foldName(tok.(string))
			if seen[name] {
				return errDuplicate
			}
			seen[name] = true
			if err := value(depth); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errMalformed
		}
		return nil
	}
	value = func(depth int) error {
		tok, err := dec.Token()
		if err != nil {
			return errMalformed
		}
		switch tok {
		case json.Delim('{'):
			return members(depth + 1)
		case json.Delim('['):
			if depth+1 > maxDepth {
				return errMalformed
			}
			for dec.More() {
				if err := value(depth + 1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return errMalformed
			}
		}
		return nil
	}
	if err := members(1); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errMalformed
	}
	return nil
}

// FuzzCheckObject compares checkObject with refCheckObject.
func FuzzCheckObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":[1,{"b":2,"B":3}]}`, `{"x":"\"}"}`, `{"\u017f":1,"s":2}`,
		`{"a":` + deep(31) + `}`, `{"a":` + deep(33) + `}`, ` { "a" : [ ] , "b" : { } } `, `{"a":1}x`, `[{"a":1}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := checkObject(data), refCheckObject(data)
		if !errors.Is(got, want) && !(got != nil && want != nil) {
			t.Fatalf("checkObject(%q) = %v, reference %v", data, got, want)
		}
		if (got == nil) != (want == nil) {
			t.Fatalf("checkObject(%q) = %v, reference %v", data, got, want)
		}
	})
}
