package auth_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
)

// jwksIdP is a JWKS endpoint on a fixed 127.0.0.1 address that a test can stop (its listener
// and connections closed: connection refused), start again on the same address, or make hang
// (it accepts the connection, reads the request and answers nothing until released).
type jwksIdP struct {
	t    testing.TB
	addr string
	URL  string

	mu   sync.Mutex
	srv  *httptest.Server // nil while stopped
	body []byte
	hang chan struct{} // non-nil: requests wait until it is closed

	fetches atomic.Int64 // requests received, answered or hung
	hung    atomic.Int64 // requests that hung
}

func newJWKSIdP(t testing.TB, body []byte) *jwksIdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	p := &jwksIdP{t: t, addr: ln.Addr().String(), body: body}
	p.URL = "http://" + p.addr + "/jwks.json"
	p.serve(ln)
	t.Cleanup(func() { p.release(nil); p.stop() })
	return p
}

func (p *jwksIdP) serve(ln net.Listener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(p.handle))
	srv.Listener = ln
	srv.Start()
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
}

func (p *jwksIdP) handle(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	p.mu.Lock()
	hang := p.hang
	p.mu.Unlock()
	if hang != nil {
		p.hung.Add(1)
		select {
		case <-hang:
		case <-r.Context().Done(): // the client gave up (its fetch timeout) or the test ended
			return
		}
	}
	p.mu.Lock()
	body := p.body
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// stop closes the listener and every connection: fetches from now on are refused.
func (p *jwksIdP) stop() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// start listens again on the same address and serves body.
func (p *jwksIdP) start(body []byte) {
	p.t.Helper()
	p.mu.Lock()
	p.body = body
	p.mu.Unlock()
	var ln net.Listener
	eventually(p.t, 5*time.Second, "the JWKS address "+p.addr+" is not free again", func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.serve(ln)
}

// hangOn makes every request from now on hang until release.
func (p *jwksIdP) hangOn() {
	p.mu.Lock()
	if p.hang == nil {
		p.hang = make(chan struct{})
	}
	p.mu.Unlock()
}

// release answers the hung requests and those to come with body (when not nil).
func (p *jwksIdP) release(body []byte) {
	p.mu.Lock()
	if body != nil {
		p.body = body
	}
	if p.hang != nil {
		close(p.hang)
		p.hang = nil
	}
	p.mu.Unlock()
}

// fetchCounter is the transport of the Authenticator's JWKS client. It counts every fetch
// attempt, also those that never reach a server, and apart those made on behalf of a request
// (the refetch for an unknown kid runs under the request's context, which carries
// http.ServerContextKey; the start and periodic fetches run under the Authenticator's own).
type fetchCounter struct {
	base        *http.Transport
	all         atomic.Int64
	fromRequest atomic.Int64
}

func newFetchCounter(t testing.TB) *fetchCounter {
	c := &fetchCounter{base: http.DefaultTransport.(*http.Transport).Clone()}
	c.base.Proxy = nil
	t.Cleanup(c.base.CloseIdleConnections)
	return c
}

func (c *fetchCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.all.Add(1)
	if req.Context().Value(http.ServerContextKey) != nil {
		c.fromRequest.Add(1)
	}
	return c.base.RoundTrip(req)
}

func (c *fetchCounter) CloseIdleConnections() { c.base.CloseIdleConnections() }

// outageFixture serves an Authenticator trusting the JWKS at url, refreshed every second,
// with unknown kids refetching at most once an hour (so only the first unknown kid of the
// test may fetch), and no token cache (every request looks its key up).
func outageFixture(t *testing.T, url string, fetchTimeout time.Duration) (*fixture, *fetchCounter, *prometheus.Registry) {
	t.Helper()
	src := jwksSource(url, time.Second, time.Hour)
	src.FetchTimeout = fetchTimeout
	fc := newFetchCounter(t)
	reg := prometheus.NewRegistry()
	f := newFixture(t, auth.Config{Sources: []auth.Source{src}, Cache: auth.Cache{Disabled: true}},
		auth.Options{Logger: quiet, Registerer: reg, HTTPClient: &http.Client{Transport: fc}}, nil)
	return f, fc, reg
}

// timedGet is f.get of /required that fails the test when the answer takes longer than bound.
func timedGet(t *testing.T, f *fixture, hdr http.Header, bound time.Duration) response {
	t.Helper()
	start := time.Now()
	r := f.get(t, "/required", hdr)
	if d := time.Since(start); d > bound {
		t.Fatalf("answered %d after %s, want within %s", r.status, d, bound)
	}
	return r
}

// unknownKID is a token signed by k whose kid is in no key set.
func unknownKID(k edKey, i int) http.Header {
	return bearer(authtest.Sign("EdDSA", k.priv, map[string]any{"kid": fmt.Sprintf("unknown-%d", i)}, claims("mallory")))
}

// promptly bounds the answer to a request that needs no fetch. A request that waited for a
// fetch in flight would take up to the fetch timeout, which is twice as long.
const promptly = time.Second

// TestJWKSUnreachableMidRun: after a first good fetch the JWKS server goes away (connection
// refused): the last good keys keep verifying without delay, an unknown kid is refused at once
// and fetches at most once per unknown_kid_interval, and once the server listens again on the
// same address the next refresh brings a new key in.
func TestJWKSUnreachableMidRun(t *testing.T) {
	t.Parallel()
	a, b := newEdKey(t, "key-a"), newEdKey(t, "key-b")
	idp := newJWKSIdP(t, authtest.JWKS(a.jwk()))
	f, fc, reg := outageFixture(t, idp.URL, 2*time.Second)
	check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})

	idp.stop()
	served := idp.fetches.Load()
	errorsBefore := counterValue(t, reg, "gateway_auth_jwks_fetch_total", "error")
	attempts := fc.all.Load()
	// While refreshes fail, every request of the last good key is answered at once.
	eventually(t, 10*time.Second, "no refresh was attempted while the JWKS was down", func() bool {
		check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})
		return fc.all.Load() >= attempts+2
	})
	if n := idp.fetches.Load(); n != served {
		t.Fatalf("the stopped JWKS server received %d requests", n-served)
	}
	if n := counterValue(t, reg, "gateway_auth_jwks_fetch_total", "error"); n < errorsBefore+2 {
		t.Fatalf("failed fetches counted %v, want >= %v", n, errorsBefore+2)
	}

	// Unknown kids: refused at once; only the first may fetch (and fails).
	const flood = 50
	for i := range flood {
		check(t, timedGet(t, f, unknownKID(a, i), promptly), want{status: 401, challenge: challengeInvalid})
	}
	if n := fc.fromRequest.Load(); n != 1 {
		t.Fatalf("%d unknown kids made %d fetches, want 1 (one per unknown_kid_interval)", flood, n)
	}
	check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})

	// The server comes back on the same address with a rotated set. Key b's kid is unknown and
	// the limiter is empty, so b is accepted once a periodic refresh has run.
	idp.start(authtest.JWKS(a.jwk(), b.jwk()))
	eventually(t, 10*time.Second, "the new key is still refused after the JWKS came back", func() bool {
		r := timedGet(t, f, bearer(b.token("bob")), promptly)
		if r.status != http.StatusOK {
			check(t, r, want{status: 401, challenge: challengeInvalid})
			return false
		}
		check(t, r, want{status: 200, subject: "bob"})
		return true
	})
	check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})
	if n := fc.fromRequest.Load(); n != 1 {
		t.Fatalf("unknown kids made %d fetches in all, want 1", n)
	}
	if idp.fetches.Load() == served {
		t.Fatal("the restarted JWKS server received no request")
	}
}

// TestJWKSHangsMidRun: after a first good fetch the JWKS server accepts fetches and never
// answers (until released, long after fetch_timeout). A hanging fetch, periodic or for an
// unknown kid, never holds up a token of a known key; the unknown kid that fetched is
// answered 401 within fetch_timeout, the later ones at once without fetching; once the server
// answers again the next refresh brings a new key in.
func TestJWKSHangsMidRun(t *testing.T) {
	t.Parallel()
	const fetchTimeout = 2 * time.Second
	a, b := newEdKey(t, "key-a"), newEdKey(t, "key-b")
	idp := newJWKSIdP(t, authtest.JWKS(a.jwk()))
	f, fc, reg := outageFixture(t, idp.URL, fetchTimeout)
	check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})

	idp.hangOn()
	errorsBefore := counterValue(t, reg, "gateway_auth_jwks_fetch_total", "error")

	// The first unknown kid fetches, and its fetch hangs: it is answered when fetch_timeout
	// ends. Meanwhile tokens of key a are verified as if nothing were in flight.
	type answer struct {
		status    int
		challenge string
		took      time.Duration
		err       error
	}
	first := make(chan answer, 1)
	go func() {
		start := time.Now()
		req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/required", nil)
		if err != nil {
			first <- answer{err: err}
			return
		}
		req.Header = unknownKID(a, 0)
		resp, err := f.client.Do(req)
		if err != nil {
			first <- answer{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		first <- answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), took: time.Since(start)}
	}()
	var got *answer
	eventually(t, 15*time.Second, "no periodic and unknown-kid fetch both hung and timed out", func() bool {
		check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})
		if got == nil {
			select {
			case r := <-first:
				got = &r
			default:
			}
		}
		// Two fetches timed out: the one for the unknown kid and at least one periodic one.
		return got != nil && idp.hung.Load() >= 2 &&
			counterValue(t, reg, "gateway_auth_jwks_fetch_total", "error") >= errorsBefore+2
	})
	if got.err != nil {
		t.Fatalf("unknown kid during the hang: %v", got.err)
	}
	if got.status != http.StatusUnauthorized || got.challenge != challengeInvalid {
		t.Fatalf("unknown kid during the hang: %d %q, want 401 %q", got.status, got.challenge, challengeInvalid)
	}
	if got.took > fetchTimeout+promptly {
		t.Fatalf("unknown kid during the hang answered after %s, want within fetch_timeout %s", got.took, fetchTimeout)
	}
	if n := fc.fromRequest.Load(); n != 1 {
		t.Fatalf("the first unknown kid made %d fetches, want 1", n)
	}

	// The limiter is empty: further unknown kids are refused at once and fetch nothing.
	const flood = 50
	for i := 1; i <= flood; i++ {
		check(t, timedGet(t, f, unknownKID(a, i), promptly), want{status: 401, challenge: challengeInvalid})
	}
	if n := fc.fromRequest.Load(); n != 1 {
		t.Fatalf("%d more unknown kids made %d fetches in all, want 1", flood, n)
	}

	// The server answers again, with a rotated set: the next periodic refresh brings key b.
	idp.release(authtest.JWKS(a.jwk(), b.jwk()))
	eventually(t, 10*time.Second, "the new key is still refused after the JWKS answered again", func() bool {
		r := timedGet(t, f, bearer(b.token("bob")), promptly)
		if r.status != http.StatusOK {
			check(t, r, want{status: 401, challenge: challengeInvalid})
			return false
		}
		check(t, r, want{status: 200, subject: "bob"})
		return true
	})
	check(t, timedGet(t, f, bearer(a.token("alice")), promptly), want{status: 200, subject: "alice"})
	if n := fc.fromRequest.Load(); n != 1 {
		t.Fatalf("unknown kids made %d fetches in all, want 1", n)
	}
}
