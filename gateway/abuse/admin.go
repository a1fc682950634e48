package abuse

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/httperror"
)

// blockJSON is one block as AdminHandler lists it.
type blockJSON struct {
	Address  string `json:"address"`
	Until    string `json:"until"` // RFC 3339, UTC
	Failures int    `json:"failures"`
}

// AdminHandler serves the operator's view of the blocks, for the gateway to mount on its admin
// listener (e.g. under /admin/abuse/blocks); it does no authentication of its own.
//
//	GET                 200 {"blocks":[{"address":"192.0.2.7","until":"2026-12-04T19:05:00Z","failures":31}]}
//	                    sorted by address
//	DELETE ?addr=<ip>   204 the block is lifted; 404 NOT_FOUND when the address is not blocked;
//	                    400 INVALID_ARGUMENT when addr is not an IP address
//
// Other methods get 405 with Allow. Errors are google.rpc.Status bodies (gateway/httperror); a
// backend that cannot answer gives 503 UNAVAILABLE.
func (d *Detector) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			d.serveList(w, r)
		case http.MethodDelete:
			d.serveLift(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, DELETE")
			httperror.WriteWithStatus(w, http.StatusMethodNotAllowed, status.New(codes.Unimplemented, "method not allowed on this path"))
		}
	})
}

func (d *Detector) serveList(w http.ResponseWriter, r *http.Request) {
	blocks, err := d.List(r.Context())
	if err != nil {
		d.logger.Warn("listing abuse blocks", "err", err)
		httperror.Write(w, status.New(codes.Unavailable, "abuse store unavailable"))
		return
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].Addr.Less(blocks[j].Addr) })
	out := struct {
		Blocks []blockJSON `json:"blocks"`
	}{Blocks: make([]blockJSON, len(blocks))}
	for i, b := range blocks {
		out.Blocks[i] = blockJSON{Address: b.Addr.String(), Until: b.Until.UTC().Format(time.RFC3339), Failures: b.Failures}
	}
	body, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(body, '\n'))
}

func (d *Detector) serveLift(w http.ResponseWriter, r *http.Request) {
	addr, ok := parseAddrParam(r.URL.Query()["addr"])
	if !ok {
		httperror.Write(w, status.New(codes.InvalidArgument, "addr must be one IP address"))
		return
	}
	switch err := d.Lift(r.Context(), addr); {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrNotBlocked):
		httperror.Write(w, status.New(codes.NotFound, "address is not blocked"))
	default:
		d.logger.Warn("lifting an abuse block", "addr", addr.String(), "err", err)
		httperror.Write(w, status.New(codes.Unavailable, "abuse store unavailable"))
	}
}

// parseAddrParam parses the one addr parameter: an IPv4 or IPv6 address without a zone (an
// IPv4-mapped IPv6 address is the IPv4 address, as gateway/clientip reports it).
func parseAddrParam(values []string) (netip.Addr, bool) {
	if len(values) != 1 || strings.ContainsRune(values[0], '%') {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(values[0]))
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}
