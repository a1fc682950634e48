// Package ipfilter refuses clients by IP address: CIDR allow and deny lists, global (the
// operator's config, checked at the edge before routing) and per RPC (the route's
// Policy.AllowCIDRs / Policy.DenyCIDRs, checked after route matching).
//
// Decision for one list pair: an address in a deny prefix is refused (deny wins); otherwise, when
// the allow list is not empty, an address outside it is refused; otherwise it is admitted. The
// global and the route's rules must both admit a client. A refused request gets 403
// PERMISSION_DENIED ("client address not allowed") as a google.rpc.Status, written through
// gateway/httperror, before its body is read.
//
// The client's address comes from gateway/clientip (X-Forwarded-For only through trusted
// proxies). A request whose address is unknown (RemoteAddr is not an address, as for in-process
// requests) is refused when an allow list applies and admitted when only deny lists do.
//
// Every list of rules, global or per route, is parsed by ParsePrefixes: CIDR prefixes or single
// addresses, IPv4-mapped entries taken as IPv4, every bad entry reported at once.
//
// Config example (YAML section `ip_rules`):
//
//	ip_rules:
//	  allow: ["10.0.0.0/8", "2001:db8::/32"]   # default: empty, every address admitted
//	  deny:  ["10.66.0.0/16", "192.0.2.7"]     # default: empty; single addresses allowed
//
// Defaults: both lists empty (nothing refused); Options.Resolver trusts no proxy; no metrics
// unless Options.Registerer is set (then gateway_ip_denied_total{scope="global"|"route"}).
package ipfilter
