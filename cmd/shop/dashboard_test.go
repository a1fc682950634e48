package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/internal/testredis"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// promBuiltins are series Prometheus makes itself, not the binaries.
var promBuiltins = map[string]bool{"up": true}

// TestDashboardAndAlertsMetricNames keeps the Grafana dashboard (deploy/grafana/shopgate.json)
// and the alert rules (deploy/prometheus/alerts.yml) on what the binaries export: it runs the
// whole stack (its limiter on the machine's Redis), passes an order through the saga and some refusals through the gateway, scrapes
// /metrics (the gateway's and the services' collectors, one registry in cmd/shop), and checks
// that every metric name in every PromQL expression is among the scraped ones.
func TestDashboardAndAlertsMetricNames(t *testing.T) {
	exprs := dashboardExprs(t, "../../deploy/grafana/shopgate.json")
	exprs = append(exprs, alertExprs(t, "../../deploy/prometheus/alerts.yml")...)
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions found", len(exprs))
	}

	// The limiter on Redis, so that its backend gauges exist (the memory backend has none).
	addr := testredis.Need(t)
	data := t.TempDir()
	cfg := filepath.Join(data, "gateway.yaml")
	yml := "rate_limiting: {backend: redis, redis: {addr: " + addr + ", key_prefix: " + testredis.Prefix(t, "dashboard") + "}}\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	st := startStack(t, data, "-config", cfg)
	t.Cleanup(func() { st.stop(t) })
	key, err := devkey.LoadOrCreate(filepath.Join(data, "devkeys"))
	if err != nil {
		t.Fatal(err)
	}
	s := &sagaStack{stack: st, t: t, data: data, key: key, watch: http.DefaultClient}
	alice := s.token("dash-alice", "customer")
	o := s.create(alice, `{"items":[{"sku":"sku-apple","quantity":1}]}`, nil)
	s.settle(1, 1)
	s.get(o.ID, alice)
	s.do("GET", "/v1/orders/"+o.ID, "", "", nil) // 401
	s.do("GET", "/no/such/route", "", "", nil)   // 404, no route

	exported := scrapeNames(t, s.base+"/metrics")
	for _, e := range exprs {
		for _, name := range promqlMetricNames(e.expr) {
			if !exported[name] && !promBuiltins[name] {
				t.Errorf("%s: %q is not exported by the binaries (expression %s)", e.where, name, e.expr)
			}
		}
	}
	if t.Failed() {
		var names []string
		for n := range exported {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("exported: %s", strings.Join(names, " "))
	}
}

// TestPromQLMetricNames checks the name extraction the test above relies on.
func TestPromQLMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (http_route) (rate(http_server_request_duration_seconds_count{job=~"$gateway", http_response_status_code=~"5.."}[$__rate_interval]))`,
			[]string{"http_server_request_duration_seconds_count"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1`, []string{"a_bucket"}},
		{`max by (job) (orders_pending) > 100 and max by (job) (delta(orders_pending[15m])) > 0`, []string{"orders_pending"}},
		{`up{job=~"shopgate-.*"} == 0`, []string{"up"}},
		{`sum without (instance) (x) / on (job) group_left (version) build_info`, []string{"build_info", "x"}},
		{`count by (job, version, commit) (build_info)`, []string{"build_info"}},
	}
	for _, tt := range tests {
		if got := promqlMetricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.expr, got, tt.want)
		}
	}
}

type promExpr struct{ where, expr string }

func dashboardExprs(t *testing.T, path string) []promExpr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []promExpr
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, promExpr{path + ": panel " + p.Title, tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if m := regexp.MustCompile(`^label_values\((\w+),`).FindStringSubmatch(v.Definition); m != nil {
			out = append(out, promExpr{path + ": variable " + v.Name, m[1]})
		}
	}
	return out
}

func alertExprs(t *testing.T, path string) []promExpr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []promExpr
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, promExpr{path + ": alert " + r.Alert, r.Expr})
		}
	}
	return out
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "group_left": true, "group_right": true}
	promFollowing = regexp.MustCompile(`^\s*\(`)
)

// promqlMetricNames returns the metric names an expression selects, sorted: what is left once
// strings, label matchers, ranges and grouping clauses are removed, less functions (a name
// followed by "(") and keywords.
func promqlMetricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	seen := map[string]bool{}
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if loc[0] > 0 && (e[loc[0]-1] == '.' || e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9') {
			continue // inside a number: 1e3, 0.5
		}
		if promKeywords[strings.ToLower(name)] || promFollowing.MatchString(e[loc[1]:]) {
			continue
		}
		seen[name] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// scrapeNames returns the names of every series /metrics serves: a histogram's _bucket, _sum
// and _count, a counter's or gauge's own name.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, mf := range mfs {
		switch mf.GetType().String() {
		case "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}
