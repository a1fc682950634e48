// Package passporttest is what the services' tests share about the passport: the metadata a
// client sends in the gateway's place.
package passporttest

import (
	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc/metadata"
)

// Metadata returns outgoing metadata carrying c as the gateway's passport: each of
// passport.MDSubject, MDRoles and MDAuthMethod once, empty values included.
func Metadata(c passport.Caller) metadata.MD {
	return metadata.Pairs(passport.MDSubject, c.Subject, passport.MDRoles, c.Roles, passport.MDAuthMethod, c.Auth)
}
