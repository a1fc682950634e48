package inventory

import (
	"encoding/base64"
	"errors"
	"unicode/utf8"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/grpcserver"
)

// ValidSKU reports whether sku is 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'.
func ValidSKU(sku string) bool {
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

func validateSKU(field, sku string) error {
	if sku == "" {
		return grpcserver.InvalidArgument(field, "required")
	}
	if !ValidSKU(sku) {
		return grpcserver.InvalidArgument(field, "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'")
	}
	return nil
}

func validCurrency(c string) bool {
	return len(c) == 3 && isUpper(c[0]) && isUpper(c[1]) && isUpper(c[2])
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func validateItem(it *inventoryv1.Item) error {
	var vs []grpcserver.Violation
	if it == nil {
		return grpcserver.InvalidArgument("item", "required")
	}
	if it.GetSku() == "" {
		vs = append(vs, grpcserver.Violation{Field: "item.sku", Description: "required"})
	} else if !ValidSKU(it.GetSku()) {
		vs = append(vs, grpcserver.Violation{Field: "item.sku", Description: "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'"})
	}
	if n := utf8.RuneCountInString(it.GetName()); n < 1 || n > 200 || !utf8.ValidString(it.GetName()) {
		vs = append(vs, grpcserver.Violation{Field: "item.name", Description: "must be 1 to 200 characters"})
	}
	if it.GetPriceCents() < 0 {
		vs = append(vs, grpcserver.Violation{Field: "item.price_cents", Description: "must not be negative"})
	}
	if !validCurrency(it.GetCurrency()) {
		vs = append(vs, grpcserver.Violation{Field: "item.currency", Description: "must be an ISO 4217 code of three upper-case letters"})
	}
	if it.GetAvailable() < 0 {
		vs = append(vs, grpcserver.Violation{Field: "item.available", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return grpcserver.FieldViolations(vs...)
	}
	return nil
}

var errBadToken = errors.New("bad page token")

// encodePageToken returns the opaque token of the page after sku.
func encodePageToken(sku string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(sku))
}

// decodePageToken returns the SKU after which the page starts ("" for the first page).
func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	if len(tok) > 128 {
		return "", errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !ValidSKU(string(b)) {
		return "", errBadToken
	}
	return string(b), nil
}
