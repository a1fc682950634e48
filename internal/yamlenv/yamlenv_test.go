package yamlenv_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/yamlenv"
	"go.yaml.in/yaml/v3"
)

// conf is a configuration shaped like the gateway's: nested sections, a map of sections keyed
// by names with dots, pointers, lists of scalars and of sections, a hidden field.
type conf struct {
	Listen   string           `yaml:"listen"`
	Server   server           `yaml:"server"`
	Routes   map[string]route `yaml:"routes"`
	Origins  []string         `yaml:"origins"`
	Sources  []source         `yaml:"sources"`
	Redis    *redis           `yaml:"redis"`
	Untagged int
	Top      map[string]route `yaml:"top"`
	Inline   `yaml:",inline"`
}

type Inline struct {
	Extra bool `yaml:"extra"`
}

type server struct {
	ReadTimeout time.Duration `yaml:"read_timeout"`
	MaxConns    int           `yaml:"max_connections"`
	Watch       *bool         `yaml:"watch_config"`
}

type route struct {
	Timeout *time.Duration `yaml:"timeout"`
	Roles   []string       `yaml:"roles"`
}

type source struct {
	Name string `yaml:"name"`
}

type redis struct {
	Addr     string `yaml:"addr"`
	Password string `yaml:"-"`
}

const prefix = "APP__"

func apply(t *testing.T, file string, env ...string) (conf, []yamlenv.Override, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(file), &doc); err != nil {
		t.Fatal(err)
	}
	ovs, err := yamlenv.Apply(&doc, reflect.TypeOf(conf{}), prefix, env)
	if err != nil {
		return conf{}, nil, err
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	var c conf
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decoding the overridden document:\n%s\n%v", out, err)
	}
	return c, ovs, nil
}

func TestApply(t *testing.T) {
	sec := func(d time.Duration) *time.Duration { return &d }
	yes := true
	tests := []struct {
		name  string
		file  string
		env   []string
		check func(conf) bool
		paths []string // the overrides' paths, sorted by variable name
	}{
		{name: "top-level scalar into an empty file", file: "",
			env:   []string{"APP__LISTEN=0.0.0.0:80"},
			check: func(c conf) bool { return c.Listen == "0.0.0.0:80" }, paths: []string{"listen"}},
		{name: "file value replaced, others kept", file: "listen: a\nserver: {read_timeout: 1s, max_connections: 5}",
			env: []string{"APP__SERVER__READ_TIMEOUT=5s"},
			check: func(c conf) bool {
				return c.Listen == "a" && c.Server.ReadTimeout == 5*time.Second && c.Server.MaxConns == 5
			}},
		{name: "case of the name does not matter", file: "",
			env:   []string{"APP__server__Max_Connections=100"},
			check: func(c conf) bool { return c.Server.MaxConns == 100 }, paths: []string{"server.max_connections"}},
		{name: "a bool into a pointer, in a section the file leaves empty", file: "server:\n",
			env:   []string{"APP__SERVER__WATCH_CONFIG=true"},
			check: func(c conf) bool { return c.Server.Watch != nil && *c.Server.Watch == yes }},
		{name: "map key matched loosely against the file's", file: "routes: {shop.order.v1.OrderService/Get: {timeout: 1s}}",
			env: []string{"APP__ROUTES__SHOP_ORDER_V1_ORDERSERVICE_GET__TIMEOUT=3s"},
			check: func(c conf) bool {
				return reflect.DeepEqual(c.Routes["shop.order.v1.OrderService/Get"].Timeout, sec(3*time.Second))
			},
			paths: []string{"routes.shop.order.v1.OrderService/Get.timeout"}},
		{name: "map key absent from the file is created as written", file: "",
			env: []string{"APP__ROUTES__shop.order.v1.OrderService__TIMEOUT=2s"},
			check: func(c conf) bool {
				return reflect.DeepEqual(c.Routes["shop.order.v1.OrderService"].Timeout, sec(2*time.Second))
			}},
		{name: "comma-separated list", file: "origins: [x]",
			env: []string{"APP__ORIGINS=https://a.example, https://b.example"},
			check: func(c conf) bool {
				return reflect.DeepEqual(c.Origins, []string{"https://a.example", "https://b.example"})
			}},
		{name: "empty list", file: "origins: [x]",
			env:   []string{"APP__ORIGINS="},
			check: func(c conf) bool { return len(c.Origins) == 0 }},
		{name: "list inside a map entry", file: "",
			env:   []string{"APP__ROUTES__R__ROLES=admin,customer"},
			check: func(c conf) bool { return reflect.DeepEqual(c.Routes["R"].Roles, []string{"admin", "customer"}) }},
		{name: "empty value is null: the default", file: "server: {max_connections: 7}",
			env:   []string{"APP__SERVER__MAX_CONNECTIONS="},
			check: func(c conf) bool { return c.Server.MaxConns == 0 }},
		{name: "a string that looks like a number stays text", file: "",
			env:   []string{"APP__REDIS__ADDR=6379"},
			check: func(c conf) bool { return c.Redis != nil && c.Redis.Addr == "6379" }},
		{name: "YAML syntax in a value is text, not structure", file: "",
			env:   []string{"APP__LISTEN={a: [b]} # c"},
			check: func(c conf) bool { return c.Listen == "{a: [b]} # c" }},
		{name: "untagged field by its lower-cased name; inline field", file: "",
			env:   []string{"APP__UNTAGGED=3", "APP__EXTRA=true"},
			check: func(c conf) bool { return c.Untagged == 3 && c.Extra }},
		{name: "through an alias: the anchor's other users keep its value",
			file: "routes: {a: &r {timeout: 1s}, b: *r}",
			env:  []string{"APP__ROUTES__B__TIMEOUT=9s"},
			check: func(c conf) bool {
				return *c.Routes["a"].Timeout == time.Second && *c.Routes["b"].Timeout == 9*time.Second
			}},
		{name: "two levels below an alias", file: "top: &t {r: {timeout: 1s}}\nroutes: *t",
			env: []string{"APP__ROUTES__R__TIMEOUT=9s"},
			check: func(c conf) bool {
				return *c.Routes["r"].Timeout == 9*time.Second && *c.Top["r"].Timeout == time.Second
			}},
		{name: "other variables are ignored", file: "listen: a",
			env:   []string{"APP_LISTEN=b", "HOME=/root", "APPX__LISTEN=c"},
			check: func(c conf) bool { return c.Listen == "a" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ovs, err := apply(t, tt.file, tt.env...)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("wrong result: %+v", c)
			}
			if tt.paths != nil {
				var got []string
				for _, o := range ovs {
					got = append(got, o.Path())
				}
				if !reflect.DeepEqual(got, tt.paths) {
					t.Errorf("paths %q, want %q", got, tt.paths)
				}
			}
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		want string // in the error, besides the variable's name
	}{
		{"unknown top-level setting", "", []string{"APP__LISTN=x"}, `no setting "listn" in the top level`},
		{"unknown nested setting", "", []string{"APP__SERVER__READTIMEOUT=1s"}, `no setting "readtimeout" in server`},
		{"a section, not a setting", "", []string{"APP__SERVER=x"}, "is a section"},
		{"below a setting", "", []string{"APP__LISTEN__X=1"}, "listen is a setting, not a section"},
		{"list of sections", "", []string{"APP__SOURCES=a"}, "list of sections"},
		{"hidden field", "", []string{"APP__REDIS__PASSWORD=x"}, `no setting "password" in redis`},
		{"wrong type", "", []string{"APP__SERVER__READ_TIMEOUT=soon"}, `value "soon" refused`},
		{"wrong type in a list", "", []string{"APP__SERVER__MAX_CONNECTIONS=1,2"}, "refused"},
		{"empty level", "", []string{"APP__SERVER____READ_TIMEOUT=1s"}, "empty level 2"},
		{"empty name", "", []string{"APP__=1"}, "empty level 1"},
		{"two variables, one setting", "", []string{"APP__LISTEN=a", "APP__listen=b"}, "set the same setting listen"},
		{"ambiguous map key", "routes: {a.b: {}, a_b: {}}", []string{"APP__ROUTES__A_B__TIMEOUT=1s"}, `both "a.b" and "a_b"`},
		{"the file's value is not a mapping", "server: 5", []string{"APP__SERVER__READ_TIMEOUT=1s"}, "server is not a mapping"},
		{"the file is not a mapping", "[1, 2]", []string{"APP__LISTEN=a"}, "not a mapping of settings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := apply(t, tt.file, tt.env...)
			if err == nil {
				t.Fatal("accepted")
			}
			name, _, _ := strings.Cut(tt.env[len(tt.env)-1], "=")
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want the variable %s and %q", err, name, tt.want)
			}
		})
	}
}

func TestAny(t *testing.T) {
	tests := []struct {
		env  []string
		want bool
	}{
		{nil, false},
		{[]string{"HOME=/", "APP_X=1"}, false},
		{[]string{"HOME=/", "APP__X=1"}, true},
	}
	for _, tt := range tests {
		if got := yamlenv.Any(prefix, tt.env); got != tt.want {
			t.Errorf("Any(%q) = %v, want %v", tt.env, got, tt.want)
		}
	}
}

// FuzzApply feeds operator input (a file, a variable's name and value) to the mapper: it never
// panics, an error names the variable, and an applied value is read back by a strict decode.
func FuzzApply(f *testing.F) {
	f.Add("listen: a", "LISTEN", "b")
	f.Add("", "SERVER__READ_TIMEOUT", "5s")
	f.Add("routes: {a.b: {timeout: 1s}}", "ROUTES__A_B__TIMEOUT", "2s")
	f.Add("routes: {a: &x {timeout: 1s}, b: *x}", "ROUTES__B__ROLES", "r1, r2")
	f.Add("server: ~", "SERVER__WATCH_CONFIG", "false")
	f.Add("origins: [a]", "ORIGINS", "")
	f.Add("x: [", "SERVER____", "{")
	f.Fuzz(func(t *testing.T, file, name, value string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(file), &doc) != nil {
			return
		}
		if strings.Contains(name, "=") {
			return // not a variable's name
		}
		full := prefix + name
		ovs, err := yamlenv.Apply(&doc, reflect.TypeOf(conf{}), prefix, []string{full + "=" + value})
		if err != nil {
			if !strings.Contains(err.Error(), full) {
				t.Fatalf("error %q does not name %s", err, full)
			}
			return
		}
		if len(ovs) != 1 {
			t.Fatalf("%d overrides, want 1", len(ovs))
		}
		out, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back conf
		dec := yaml.NewDecoder(strings.NewReader(string(out)))
		dec.KnownFields(true)
		err = dec.Decode(&back)
		if err != nil && strictOK(file) {
			t.Fatalf("a valid file with a valid override does not decode:\n%s\n%v", out, err)
		}
	})
}

// strictOK reports whether file decodes strictly into a conf.
func strictOK(file string) bool {
	var c conf
	dec := yaml.NewDecoder(strings.NewReader(file))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	return err == nil
}
