package apicheck

import (
	"fmt"
	"slices"
	"strings"

	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// authOf is the effective proto auth mode (unset: required) and roles of a method.
func authOf(md protoreflect.MethodDescriptor) (gatewayv1.AuthMode, []string) {
	mode, roles := combinedAuth(servicePolicy(md.Parent().(protoreflect.ServiceDescriptor)), methodPolicy(md))
	if mode == gatewayv1.AuthMode_AUTH_MODE_UNSPECIFIED {
		mode = gatewayv1.AuthMode_AUTH_MODE_REQUIRED
	}
	if mode == gatewayv1.AuthMode_AUTH_MODE_NONE {
		roles = nil // a public RPC checks none
	}
	return mode, roles
}

// strictness orders the auth modes: none < optional < required.
func strictness(m gatewayv1.AuthMode) int {
	switch m {
	case gatewayv1.AuthMode_AUTH_MODE_NONE:
		return 0
	case gatewayv1.AuthMode_AUTH_MODE_OPTIONAL:
		return 1
	}
	return 2
}

// diffAuth compares the auth mode and the roles (any-of: an empty list admits any
// authenticated caller, so adding a role to a non-empty list, or emptying it, loosens; removing
// one from a list that stays non-empty, or requiring roles where none were, tightens).
func diffAuth(rpc, pos string, bm, hm protoreflect.MethodDescriptor) []Change {
	var out []Change
	bmode, broles := authOf(bm)
	hmode, hroles := authOf(hm)
	add := func(kind ChangeKind, format string, args ...any) {
		out = append(out, Change{Kind: kind, Pos: pos, Keys: []string{rpc}, Message: fmt.Sprintf("rpc %s: ", rpc) + fmt.Sprintf(format, args...)})
	}
	switch bs, hs := strictness(bmode), strictness(hmode); {
	case hs < bs:
		add(AuthLoosened, "auth loosened from %s to %s", bmode, hmode)
	case hs > bs:
		add(Breaking, "auth tightened from %s to %s", bmode, hmode)
	}
	if hmode == gatewayv1.AuthMode_AUTH_MODE_NONE || bmode == gatewayv1.AuthMode_AUTH_MODE_NONE {
		return out // roles do not apply on one side; the mode change says it all
	}
	added, removed := setDiff(hroles, broles), setDiff(broles, hroles)
	switch {
	case len(broles) > 0 && len(hroles) == 0:
		add(AuthLoosened, "roles [%s] dropped: any authenticated caller is let in", strings.Join(broles, ","))
	case len(broles) > 0 && len(added) > 0:
		add(AuthLoosened, "roles widened with [%s]", strings.Join(added, ","))
	}
	switch {
	case len(broles) == 0 && len(hroles) > 0:
		add(Breaking, "roles [%s] now required", strings.Join(hroles, ","))
	case len(hroles) > 0 && len(removed) > 0:
		add(Breaking, "roles narrowed: [%s] no longer admitted", strings.Join(removed, ","))
	}
	return out
}

func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
