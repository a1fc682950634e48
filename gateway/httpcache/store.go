package httpcache

import (
	"context"
	"encoding/binary"
	"errors"
	"time"
)

// Entry is one cached 200 answer.
type Entry struct {
	ContentType string
	ETag        string
	Body        []byte
	Stored      time.Time // when it was fetched: Age
	Expires     time.Time
	Gen         uint64 // the store's generation of its resource when it was fetched
}

// size is what e costs the memory backend, with its key.
func (e *Entry) size(key string) int64 {
	return int64(len(key) + len(e.ContentType) + len(e.ETag) + len(e.Body) + 64)
}

// Store keeps cached answers. Get returns the entry under key if there is a current one,
// and a token for Put: Put stores e only if no write invalidated resource since that Get.
// A Store never fails a request: a backend it cannot reach is a miss.
type Store interface {
	Get(ctx context.Context, key, resource string, now time.Time) (e *Entry, token uint64, ok bool)
	Put(ctx context.Context, key, resource string, token uint64, e *Entry)
	Invalidate(ctx context.Context, resources []string)
}

// encode is e as the Redis backend stores it.
func (e *Entry) encode() []byte {
	b := make([]byte, 0, 32+len(e.ContentType)+len(e.ETag)+len(e.Body))
	b = binary.AppendUvarint(b, e.Gen)
	b = binary.AppendVarint(b, e.Stored.UnixNano())
	b = binary.AppendVarint(b, e.Expires.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(e.ContentType)))
	b = append(b, e.ContentType...)
	b = binary.AppendUvarint(b, uint64(len(e.ETag)))
	b = append(b, e.ETag...)
	return append(b, e.Body...)
}

var errCorrupt = errors.New("httpcache: corrupt entry")

func decode(b []byte) (*Entry, error) {
	var e Entry
	var n int
	if e.Gen, n = binary.Uvarint(b); n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	stored, n := binary.Varint(b)
	if n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	expires, n := binary.Varint(b)
	if n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	e.Stored, e.Expires = time.Unix(0, stored), time.Unix(0, expires)
	for _, s := range []*string{&e.ContentType, &e.ETag} {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return nil, errCorrupt
		}
		*s = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	e.Body = b
	return &e, nil
}
