package order

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/grpcserver"
)

// Limits of CreateOrder.
const (
	MaxLines       = 50
	MaxQuantity    = 1000
	MaxKeyLength   = 255
	maxIDLength    = 64
	maxMethodChars = 64
)

func validSKU(sku string) bool {
	if len(sku) == 0 || len(sku) > 64 {
		return false
	}
	for i := 0; i < len(sku); i++ {
		c := sku[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// validID reports whether id could be an order id: 1 to 64 characters of a-z, A-Z, 0-9, '-', '_'.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func validateID(field, id string) error {
	if id == "" {
		return grpcserver.InvalidArgument(field, "required")
	}
	if !validID(id) {
		return grpcserver.InvalidArgument(field, "malformed id")
	}
	return nil
}

// validKey reports whether an Idempotency-Key is 1 to 255 printable ASCII characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// validateCreate checks a CreateOrderRequest field by field.
func validateCreate(req *orderv1.CreateOrderRequest) error {
	items := req.GetItems()
	if len(items) == 0 || len(items) > MaxLines {
		return grpcserver.InvalidArgument("items", fmt.Sprintf("must have 1 to %d lines", MaxLines))
	}
	var vs []grpcserver.Violation
	seen := make(map[string]struct{}, len(items))
	for i, l := range items {
		field := "items[" + strconv.Itoa(i) + "]"
		switch _, dup := seen[l.GetSku()]; {
		case l.GetSku() == "":
			vs = append(vs, grpcserver.Violation{Field: field + ".sku", Description: "required"})
		case !validSKU(l.GetSku()):
			vs = append(vs, grpcserver.Violation{Field: field + ".sku", Description: "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'"})
		case dup:
			vs = append(vs, grpcserver.Violation{Field: field + ".sku", Description: "appears more than once in the order"})
		}
		seen[l.GetSku()] = struct{}{}
		if q := l.GetQuantity(); q < 1 || q > MaxQuantity {
			vs = append(vs, grpcserver.Violation{Field: field + ".quantity", Description: fmt.Sprintf("must be between 1 and %d", MaxQuantity)})
		}
	}
	if pm := req.GetPaymentMethod(); len(pm) > maxMethodChars || strings.ContainsFunc(pm, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		vs = append(vs, grpcserver.Violation{Field: "payment_method", Description: "must be up to 64 printable characters"})
	}
	if len(vs) > 0 {
		return grpcserver.FieldViolations(vs...)
	}
	return nil
}

var errBadToken = errors.New("bad page token")

// encodePageToken returns the opaque token of the page after c.
func encodePageToken(c Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreateTime, 10) + "." + c.ID))
}

// decodePageToken returns the cursor of a page token (nil for the first page).
func decodePageToken(tok string) (*Cursor, error) {
	if tok == "" {
		return nil, nil
	}
	if len(tok) > 128 {
		return nil, errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, errBadToken
	}
	ts, id, ok := strings.Cut(string(b), ".")
	if !ok || !validID(id) {
		return nil, errBadToken
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n < 0 {
		return nil, errBadToken
	}
	return &Cursor{CreateTime: n, ID: id}, nil
}
