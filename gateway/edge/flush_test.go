package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/acme/shopgate/gateway/edge"
)

// TestRecorder: the edge's recorder counts what passes and sends nothing by itself (net/http
// sends a unary reply when the handler returns); Flush passes through, for streams.
func TestRecorder(t *testing.T) {
	tests := []struct {
		name       string
		status     int // written with WriteHeader first, if not 0
		writes     []string
		flush      bool
		wantStatus int
		wantBytes  int64
	}{
		{name: "writes only", writes: []string{"he", "llo"}, wantStatus: http.StatusOK, wantBytes: 5},
		{name: "a status, then a body", status: http.StatusNotFound, writes: []string{"{}"}, wantStatus: http.StatusNotFound, wantBytes: 2},
		{name: "flushed (a stream)", writes: []string{"{}\n"}, flush: true, wantStatus: http.StatusOK, wantBytes: 3},
		{name: "a flush before anything", flush: true, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			st, w, _ := edge.Ensure(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			w.Header().Set("Content-Length", strconv.FormatInt(tt.wantBytes, 10))
			if tt.status != 0 {
				w.WriteHeader(tt.status)
			}
			for _, part := range tt.writes {
				_, _ = io.WriteString(w, part)
			}
			if rec.Flushed {
				t.Fatal("the recorder flushed by itself")
			}
			if tt.flush {
				w.(http.Flusher).Flush()
				if !rec.Flushed {
					t.Fatal("Flush did not reach the ResponseWriter")
				}
			}
			if st.Status() != tt.wantStatus || st.Bytes() != tt.wantBytes {
				t.Errorf("status %d, bytes %d; want %d, %d", st.Status(), st.Bytes(), tt.wantStatus, tt.wantBytes)
			}
		})
	}
}
