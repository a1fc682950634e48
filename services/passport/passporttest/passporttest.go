// Package passporttest is what the services' tests share about the passport: the metadata a
// client sends in the gateway's place.
package passporttest

import (
	"net/url"
	"strings"

	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc/metadata"
)

// Metadata returns outgoing metadata carrying c as the gateway's passport: each of
// passport.MDSubject, MDRoles and MDAuthMethod once, empty values included, subject and roles
// percent-encoded as the gateway sends them.
func Metadata(c passport.Caller) metadata.MD {
	roles := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		roles[i] = encode(r)
	}
	return metadata.Pairs(passport.MDSubject, encode(c.Subject), passport.MDRoles, strings.Join(roles, ","), passport.MDAuthMethod, c.Auth)
}

// encode percent-encodes what gateway/identity.Encode does; url.PathEscape leaves ',' alone,
// which a role never holds, and escapes more than needed, which decodes the same.
func encode(v string) string { return strings.ReplaceAll(url.PathEscape(v), ",", "%2C") }
