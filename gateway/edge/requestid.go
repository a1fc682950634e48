package edge

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync/atomic"
)

// HeaderRequestID is the request id header, on requests and responses; upstream it becomes the
// metadata key "x-request-id".
const HeaderRequestID = "X-Request-Id"

// MaxRequestIDLen is the longest client request id kept.
const MaxRequestIDLen = 128

// RequestID keeps the client's X-Request-Id when it is well-formed (ValidRequestID), else
// replaces it with a generated one, on the request (so that it is forwarded upstream, exactly
// once) and on the response.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, w, r := ensure(w, r)
		vals := r.Header[HeaderRequestID]
		if len(vals) == 1 && ValidRequestID(vals[0]) {
			s.RequestID = vals[0]
		} else {
			s.RequestID = newRequestID()
			s.idBuf[0] = s.RequestID
			r.Header[HeaderRequestID] = s.idBuf[:]
		}
		w.Header()[HeaderRequestID] = r.Header[HeaderRequestID]
		next.ServeHTTP(w, r)
	})
}

// ValidRequestID reports whether id is 1 to 128 characters of [A-Za-z0-9._:-].
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// idPrefix makes generated ids unique across processes; idSeq within this one.
var (
	idPrefix = func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	idSeq atomic.Uint64
)

// newRequestID returns "<16 hex of process prefix>-<sequence in hex>": unique, cheap, no syscall.
func newRequestID() string {
	var buf [40]byte
	b := append(buf[:0], idPrefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, idSeq.Add(1), 16)
	return string(b)
}
