package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// jwksKeys is the JWKS KeySource: the keys of a JWKS URL, kept by keyfunc/jwkset: fetched at
// start, every RefreshInterval by a goroutine that stops on Close, and on an unknown kid at most once per
// UnknownKIDInterval (a token that finds the limiter empty is refused at once, never queued:
// the limiter is ours and only asked with Allow; jwkset's own never makes anyone wait).
// A failed fetch, an over-size body or an invalid document keeps the previous keys.
type jwksKeys struct {
	kf         keyfunc.Keyfunc
	store      *generationStorage
	unknownKID *rate.Limiter // fetches caused by unknown kids
	cancel     context.CancelFunc
	client     *http.Client
}

// newJWKSKeys starts the JWKS source of s (which has its defaults) and makes its first fetch.
func newJWKSKeys(s Source, opts Options, m *metrics) (*jwksKeys, error) {
	ctx, cancel := context.WithCancel(context.Background())
	client := limitedClient(opts.HTTPClient, s.MaxJWKSBytes)
	store := &generationStorage{Storage: jwkset.NewMemoryStorage(), fetched: m.jwksFetch.WithLabelValues(s.Name, "ok")}
	failed := m.jwksFetch.WithLabelValues(s.Name, "error")
	httpStore, err := jwkset.NewStorageFromHTTP(s.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		HTTPTimeout:               s.FetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			failed.Inc()
			opts.Logger.WarnContext(ctx, "jwks fetch failed; keeping the previous keys", "source", s.Name, "error", err)
		},
		RefreshInterval: s.RefreshInterval,
		Storage:         store,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("creating jwks storage: %w", err)
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{s.JWKSURL: httpStore},
		// The fetch on an unknown kid runs under this deadline (the fetch timeout). jwkset's
		// limiter never waits: key() asks ours first, without queueing.
		RateLimitWaitMax:  s.FetchTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("creating jwks client: %w", err)
	}
	// Keys published for encryption ("use": "enc") never verify a signature.
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("creating keyfunc: %w", err)
	}
	return &jwksKeys{kf: kf, store: store, unknownKID: rate.NewLimiter(rate.Every(s.UnknownKIDInterval), 1), cancel: cancel, client: client}, nil
}

// Key returns the key of the token's kid (which it requires) through keyfunc, which also checks
// the key's alg and use. An unknown kid fetches the JWKS again, under ctx, only when the
// unknown-kid limiter has a token.
func (j *jwksKeys) Key(ctx context.Context, t *jwt.Token) (any, error) {
	kid, hasKID := kidOf(t)
	if !hasKID {
		return nil, errNoKID
	}
	if _, err := j.store.KeyRead(ctx, kid); errors.Is(err, jwkset.ErrKeyNotFound) && !j.unknownKID.Allow() {
		return nil, errUnknownKID // the next fetch for an unknown kid is not due: refused at once
	}
	k, err := j.kf.KeyfuncCtx(ctx)(t)
	if err != nil {
		return nil, errors.Join(errUnknownKID, err)
	}
	return k, nil
}

// generation counts the successful fetches: each replaces the key set.
func (j *jwksKeys) generation() uint64 { return j.store.gen.Load() }

// Close stops the refresh goroutine and closes the idle connections of the JWKS client.
func (j *jwksKeys) Close() error {
	j.cancel()
	j.client.CloseIdleConnections()
	return nil
}

// generationStorage counts the replacements of the key set (one per successful fetch), so
// that the token cache drops what older keys verified: a key removed from the JWKS stops
// verifying cached tokens at the next fetch.
type generationStorage struct {
	jwkset.Storage
	gen     atomic.Uint64
	fetched interface{ Inc() }
}

// KeyReplaceAll replaces the keys and starts a new generation.
func (g *generationStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	err := g.Storage.KeyReplaceAll(ctx, given)
	g.gen.Add(1)
	g.fetched.Inc()
	return err
}

// errJWKSTooLarge fails a fetch whose body passes the source's MaxJWKSBytes.
var errJWKSTooLarge = errors.New("jwks response too large")

// limitedClient returns a copy of base (default: a fresh transport without proxy) whose
// response bodies fail after max bytes.
func limitedClient(base *http.Client, limit int64) *http.Client {
	var c http.Client
	if base != nil {
		c = *base
	}
	rt := c.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // libraries read no environment; a proxy comes with Options.HTTPClient
		rt = t
	}
	c.Transport = limitedTransport{base: rt, limit: limit}
	if c.CheckRedirect == nil {
		c.CheckRedirect = checkRedirect
	}
	return &c
}

// maxRedirects bounds the redirects a JWKS fetch follows.
const maxRedirects = 3

// checkRedirect follows at most maxRedirects redirects, each to a URL jwks_url could be
// (https, or http on loopback): a redirect never downgrades the fetch to plain http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("jwks fetch: too many redirects")
	}
	return checkJWKSURL(req.URL.String())
}

// limitedTransport wraps each response body in a limitedBody.
type limitedTransport struct {
	base  http.RoundTripper
	limit int64
}

// RoundTrip sends req through the base transport and caps the response body.
func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.limit}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the base transport.
func (t limitedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// limitedBody returns errJWKSTooLarge once more than left bytes have arrived.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errJWKSTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.left = -1
		return n, errJWKSTooLarge
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
