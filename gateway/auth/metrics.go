package auth

import (
	"github.com/prometheus/client_golang/prometheus"

	gwmetrics "github.com/acme/shopgate/gateway/metrics"
)

// result is the outcome of one request at this stage: the result label of
// gateway_auth_requests_total.
type result int

// The results.
const (
	resultPublic    result = iota // an AuthNone route: nothing checked
	resultAnonymous               // an AuthOptional route without credential
	resultJWT                     // a valid token
	resultAPIKey                  // a valid API key
	resultMissing                 // 401: no credential
	resultInvalid                 // 401: a credential that does not verify
	resultExpired                 // 401: an expired token
	resultForbidden               // 403: a missing role
	numResults
)

// resultNames are the label values, by result.
var resultNames = [numResults]string{"public", "anonymous", "jwt", "apikey", "missing", "invalid", "expired", "forbidden"}

// metrics are the stage's collectors. Their children are resolved once, so counting on the
// request path allocates nothing.
type metrics struct {
	results   [numResults]prometheus.Counter
	cacheHit  prometheus.Counter
	cacheMiss prometheus.Counter
	jwksFetch *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_auth_requests_total",
		Help: "Requests seen by the auth stage, by outcome.",
	}, []string{"result"})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_auth_token_cache_total",
		Help: "Lookups of the verified-token cache, by result (hit, miss).",
	}, []string{"result"})
	fetch := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_auth_jwks_fetch_total",
		Help: "Fetches of JWKS URLs, by source and result (ok, error).",
	}, []string{"source", "result"})
	if reg != nil {
		var err error
		if requests, err = gwmetrics.RegisterOrReuse(reg, requests); err != nil {
			return nil, err
		}
		if cache, err = gwmetrics.RegisterOrReuse(reg, cache); err != nil {
			return nil, err
		}
		if fetch, err = gwmetrics.RegisterOrReuse(reg, fetch); err != nil {
			return nil, err
		}
	}
	m := &metrics{jwksFetch: fetch,
		cacheHit: cache.WithLabelValues("hit"), cacheMiss: cache.WithLabelValues("miss")}
	for r, name := range resultNames {
		m.results[r] = requests.WithLabelValues(name)
	}
	return m, nil
}
