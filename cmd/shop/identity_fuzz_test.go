package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/acme/shopgate/internal/devkey"
	"github.com/golang-jwt/jwt/v5"
)

// The second issuer FuzzIdentity trusts: an HMAC source whose subjects reach the services as
// "partner|<sub>" and which may grant the customer role only.
const (
	partnerName     = "partner"
	partnerIssuer   = "https://idp.partner.example"
	partnerAudience = "shop-api"
	// fuzzOwner owns the order an admin may read and nobody else may: a subject no seed uses.
	fuzzOwner = "fuzz-owner-7d1c"
	// roleSep separates the roles of one fuzz input: every other character may be in a role.
	roleSep = "\x1f"
	// maxTokenBytes is gateway/auth's default cap on a token (auth.DefaultMaxTokenBytes).
	maxTokenBytes = 8 << 10
)

// identitySeeds are the tricky identities: controls, NUL, emoji, RTL and zero-width marks,
// what looks like an encoded or joined role list, the namespace separator, invalid UTF-8.
var identitySeeds = []struct {
	sub, roles string
	partner    bool
}{
	{"alice", "customer", false},
	{"alice", "customer", true},
	{"nul\x00byte", "customer", false},
	{"nul\x00byte", "cust\x00omer", true},
	{"\x00", "", false},
	{"bell\a esc\x1b del\x7f", "customer", false},
	{"tab\tnewline\ncr\r", "customer" + roleSep + "admin", true},
	{"emoji 🙂👩‍👩‍👧", "🙂", false},
	{"\u202eevil\u202c rtl", "\u200fadmin", false},
	{"zero\u200bwidth\ufeff", "admin\u200b", true},
	{"%2C", "customer%2Cadmin", false},
	{"a%7Cb%00", "%20admin", true},
	{"customer, admin", "customer, admin", false},
	{"x", "customer" + roleSep + " admin", false},
	{"x", "admin\u00a0", false},
	{"x", "\u3000admin", true},
	{"x", "customer" + roleSep, false},
	{"x", "admin", false},
	{"x", "admin", true},
	{"pipe|in dev", "customer", false},
	{"pipe|in partner", "customer", true},
	{"apikey|bot-1", "admin", true},
	{"", "customer", false},
	{"", "customer", true},
	{" ", "customer", false},
	{"trailing space ", "admin ", false},
	{"bad utf8 \xff\xfe", "cust\xc3omer", false},
	{"\xed\xa0\x80 surrogate", "customer", true},
	{"名前 josé Ω", "клиент", false},
	{strings.Repeat("長", 2500), "customer", false}, // too long a token: refused
	{strings.Repeat("ß", 1500), "customer", true},
	{strings.Repeat("%", 5800), "customer", false},   // a token just under the cap: 17 KB of metadata
	{strings.Repeat("é", 2900), "admin", true},       // the same, from the partner
	{"x", strings.Repeat("%,", 10) + "admin", false}, // refused: ','
	{"x", "\x01admin", false},                        // refused: a control character at the start
}

// FuzzIdentity drives identities (subject, roles, issuer) with arbitrary Unicode through
// authentication and the passport to the order service, in the single-process stack trusting
// two issuers: the development key (plain subjects) and an HMAC "partner" source (subjects
// "partner|<sub>", roles bounded to customer). For each input it creates an order and checks
// that the service saw exactly the token's subject (the order's customer), that it saw the
// admin role exactly when the token granted it (it reads an order of somebody else), or that
// the gateway refused the token with 401. Nothing else is answered: no 500, and the order
// breaker never opens.
//
// Invalid UTF-8 cannot be written in a JSON token: like encoding/json, the minter replaces each
// invalid byte with U+FFFD, and what the service must see is that text.
func FuzzIdentity(f *testing.F) {
	for _, s := range identitySeeds {
		f.Add(s.sub, s.roles, s.partner)
	}
	data := f.TempDir()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		f.Fatal(err)
	}
	secretHex := hex.EncodeToString(secret)
	secretPath := filepath.Join(data, "partner.secret")
	cfgPath := filepath.Join(data, "gateway.yaml")
	// Refusals are expected by the thousand from one address (and the same subjects again and
	// again): the abuse detector and the rate limits are set out of the way.
	cfg := fmt.Sprintf(`auth:
  sources:
    - {name: %s, issuer: %q, audiences: [%s], secret_file: %q, allowed_roles: [customer]}
abuse: {max_failures: 10000, window: 1s}
defaults: {rate_limit: {requests: 100000, per: 1s}}
`, partnerName, partnerIssuer, partnerAudience, secretPath)
	for path, body := range map[string]string{secretPath: secretHex, cfgPath: cfg} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	// The stack starts with the first input (startStack and newMinter take a *testing.T) and
	// stops when the fuzz target ends.
	var (
		once       sync.Once
		st         *stack
		m          *minter
		ownerOrder string
	)
	f.Cleanup(func() {
		if st == nil {
			return
		}
		st.cancel()
		select {
		case err := <-st.done:
			if err != nil {
				f.Errorf("run: %v\n%s", err, st.stderr.String())
			}
		case <-time.After(30 * time.Second):
			f.Error("the stack did not stop within 30s")
		}
	})
	f.Fuzz(func(t *testing.T, sub, roles string, partner bool) {
		once.Do(func() {
			s := startStack(t, data, "-config", cfgPath)
			st = s
			m = newMinter(t, data)
			ownerOrder = createOrder(t, newAPIClient(t, st), bearer(m.user(t, fuzzOwner, "customer"))).ID
		})
		if ownerOrder == "" {
			t.Fatal("the stack did not start (see the first input's failure)")
		}
		c := newAPIClient(t, st)
		// What the token can say: JSON holds valid UTF-8 only.
		sub = string([]rune(sub))
		var roleList []string
		if roles != "" {
			for _, r := range strings.Split(roles, roleSep) {
				roleList = append(roleList, string([]rune(r)))
			}
		}
		claims := jwt.MapClaims{"sub": sub, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		if len(roleList) > 0 {
			claims["roles"] = roleList
		}
		var token, want string
		if partner {
			claims["iss"], claims["aud"] = partnerIssuer, partnerAudience
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secretHex))
			if err != nil {
				t.Fatal(err)
			}
			token, want = tok, partnerName+"|"+sub
		} else {
			claims["iss"], claims["aud"] = devkey.Issuer, devkey.Audience
			token, want = m.signed(t, jwt.SigningMethodEdDSA, m.priv, claims), sub
		}
		refusal := refusalOf(sub, roleList, partner, len(token))
		admin := slices.Contains(roleList, "admin") && !partner // the partner may grant customer only
		owner := !partner && sub == fuzzOwner

		r := c.do(t, "POST", "/v1/orders", bearer(token), orderBody)
		switch {
		case refusal != "":
			if r.status != 401 {
				t.Fatalf("sub %q roles %q partner=%v (%s): %d %s, want 401", sub, roleList, partner, refusal, r.status, r.body)
			}
			wantRefusal(t, r, 401, 16, "invalid_token")
		case r.status != 200:
			t.Fatalf("sub %q roles %q partner=%v: %d %s, want 200", sub, roleList, partner, r.status, r.body)
		default:
			var o orderJSON
			r.decode(t, &o)
			if o.Customer != want {
				t.Fatalf("sub %q roles %q partner=%v: the order service saw customer %q, want %q", sub, roleList, partner, o.Customer, want)
			}
			// The service finds the order again under the same caller: it decodes the
			// passport the same way on every call.
			if back := c.do(t, "GET", "/v1/orders/"+o.ID, bearer(token), ""); back.status != 200 {
				t.Fatalf("sub %q: reading back its own order %s: %d %s", sub, o.ID, back.status, back.body)
			}
			// The service sees admin exactly when the token granted it: fuzzOwner's order is
			// readable by an admin and its owner only (anyone else gets 404).
			other := c.do(t, "GET", "/v1/orders/"+ownerOrder, bearer(token), "")
			if wantStatus := map[bool]int{true: 200, false: 404}[admin || owner]; other.status != wantStatus {
				t.Fatalf("sub %q roles %q partner=%v: another customer's order: %d %s, want %d (admin=%v)",
					sub, roleList, partner, other.status, other.body, wantStatus, admin)
			}
		}
		breakersClosed(t, c)
	})
}

// refusalOf says why the gateway must refuse a token (401), or "" when it must accept it.
func refusalOf(sub string, roles []string, partner bool, tokenBytes int) string {
	switch {
	case tokenBytes > maxTokenBytes:
		return "token over the size cap"
	case sub == "":
		return "empty subject"
	case !partner && strings.Contains(sub, "|"):
		return "a plain subject holding the namespace separator"
	}
	for _, r := range roles {
		if r == "" || strings.Contains(r, ",") {
			return fmt.Sprintf("role %q is empty or holds ','", r)
		}
		first, _ := utf8.DecodeRuneInString(r)
		last, _ := utf8.DecodeLastRuneInString(r)
		for _, end := range []rune{first, last} {
			if unicode.IsSpace(end) || unicode.IsControl(end) {
				return fmt.Sprintf("role %q has a space or control character at an end", r)
			}
		}
	}
	return ""
}

// breakersClosed fails unless /readyz shows every circuit breaker closed.
func breakersClosed(t *testing.T, c *apiClient) {
	t.Helper()
	r := c.do(t, "GET", "/readyz", nil, "")
	var rd struct {
		Breakers map[string]string `json:"breakers"`
	}
	if err := json.Unmarshal(r.body, &rd); err != nil {
		t.Fatalf("/readyz: %d %q: %v", r.status, r.body, err)
	}
	for name, state := range rd.Breakers {
		if state != "closed" {
			t.Fatalf("breaker %s is %s: %s", name, state, r.body)
		}
	}
}
