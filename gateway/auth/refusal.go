package auth

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/httperror"
)

// Realm is the realm of every WWW-Authenticate challenge.
const Realm = "shop"

// refusal is one of the fixed answers of the stage: the client learns the category (missing,
// malformed request, invalid or expired token, missing role), never which check failed.
type refusal struct {
	res       result
	challenge string // WWW-Authenticate (RFC 6750 section 3)
	st        *status.Status
}

func unauthenticated(res result, errCode, description string) refusal {
	challenge := `Bearer realm="` + Realm + `"`
	if errCode != "" {
		challenge += `, error="` + errCode + `", error_description="` + description + `"`
	}
	return refusal{res: res, challenge: challenge, st: status.New(codes.Unauthenticated, description)}
}

// The refusals. RFC 6750 3.1: no error code when the request carried no credential the
// server understands (none, or another scheme).
var (
	refuseMissing  = unauthenticated(resultMissing, "", "missing credentials")
	refuseScheme   = unauthenticated(resultInvalid, "", "unsupported authorization scheme")
	refuseMultiple = unauthenticated(resultInvalid, "invalid_request", "multiple credentials")
	refuseToken    = unauthenticated(resultInvalid, "invalid_token", "invalid token")
	refuseExpired  = unauthenticated(resultExpired, "invalid_token", "token expired")
	refuseAPIKey   = unauthenticated(resultInvalid, "invalid_token", "invalid API key")
	refuseRole     = refusal{
		res:       resultForbidden,
		challenge: `Bearer realm="` + Realm + `", error="insufficient_scope"`,
		st:        status.New(codes.PermissionDenied, "permission denied"),
	}
)

// refuse writes ref as a google.rpc.Status through httperror.Refuse (which closes an HTTP/1
// connection whose body is unread, so that a stalled body cannot hold the refusal back).
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, ref *refusal) {
	a.m.results[ref.res].Inc()
	w.Header().Set("WWW-Authenticate", ref.challenge)
	httperror.Refuse(w, r, ref.st)
}
