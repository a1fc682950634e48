// Package clientip finds the client's IP address of a request: the TCP peer, or the address a
// trusted proxy wrote into X-Forwarded-For.
//
// The peer (http.Request.RemoteAddr) is the only address nobody can forge. X-Forwarded-For is
// believed only as far as it was written by proxies the operator trusts: the header is walked
// from right to left, every hop that is a trusted proxy is skipped, and the first hop that is not
// is the client. A client cannot spoof its address by sending its own X-Forwarded-For, because
// its values stand left of the ones the trusted proxies appended.
//
// Rules, in order:
//   - the peer is not a trusted proxy (or the config trusts none, the default): the peer;
//   - otherwise walk X-Forwarded-For (every header line, comma-separated) right to left, skipping
//     trusted hops; the first untrusted hop is the client;
//   - every hop is trusted: the leftmost hop;
//   - a malformed hop is met before the client is found, or the header is missing or longer than
//     MaxHops: the peer (fail safe: a garbled header never lets a client pick its address).
//
// Hops may be IPv4, IPv6, IPv6 in brackets, or carry a port ("203.0.113.7:4711",
// "[2001:db8::1]:443"); IPv4-mapped IPv6 addresses are returned as IPv4.
//
// Config example (YAML section `client_ip`):
//
//	client_ip:
//	  trusted_proxies: ["10.0.0.0/8", "192.168.1.10"]   # see ParsePrefixes; default none
//
// Defaults: TrustedProxies empty (the peer is always the client); at most MaxHops (32) hops of
// X-Forwarded-For are examined. ClientIP does not allocate.
package clientip
