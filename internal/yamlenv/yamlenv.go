// Package yamlenv applies environment variables to a YAML document before it is decoded, so
// that a variable may override any scalar setting of a configuration file and the decode's own
// checks (types, unknown keys, validation) apply to what the variable says.
//
// A variable PREFIX + "A__B__C" sets the key path a.b.c: levels are separated by a double
// underscore, because keys contain single ones. A level that is a struct field matches its
// yaml name without regard to case (SERVER__READ_TIMEOUT is server.read_timeout). A level that
// is a map key (an upstream's or a route's name) matches the file's key that is the same once
// both are lower-cased and every character other than a letter or a digit is read as "_"
// (SHOP_ORDER_V1_ORDERSERVICE matches shop.order.v1.OrderService); a key the file does not have
// is created as written in the variable's name. Missing mappings on the way are created.
//
// The value is a plain YAML scalar whose type the decode decides: "5s", "true", "100" and
// "redis" all work where the field takes them; an empty value is null, the field's default. A
// list of scalars ([]string) takes a comma-separated value ("a, b" is [a b]; "" is []). A list of
// sections (auth.sources) cannot be set this way: set it in the file.
//
// A setting changed inside an anchored node (&name) changes for its aliases (*name) too; one
// changed through an alias changes for that alias only.
//
// A variable naming no setting, a section instead of a setting, or a value its setting cannot
// take is an error naming the variable (typo safety).
package yamlenv

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Sep separates the levels of a variable's name.
const Sep = "__"

// Override is one variable that applies: its name, its value and the key path it sets.
type Override struct {
	Name  string
	Value string
	path  []string // the yaml keys, as the file spells them (map keys possibly created)
}

// Apply sets, in doc (a yaml document node, possibly empty: Kind 0), every setting of type t
// (a struct type, that the document decodes into) named by a variable of environ (in
// os.Environ's "NAME=value" form) whose name starts with prefix. It reports the overrides it
// applied, sorted by name. Variables without the prefix are ignored; a variable with it that
// names no setting is an error, after which doc may be partly changed: discard it.
func Apply(doc *yaml.Node, t reflect.Type, prefix string, environ []string) ([]Override, error) {
	var ovs []Override
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		ovs = append(ovs, Override{Name: name, Value: value})
	}
	if len(ovs) == 0 {
		return nil, nil
	}
	sort.Slice(ovs, func(i, j int) bool { return ovs[i].Name < ovs[j].Name })
	root, err := rootMapping(doc)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", ovs[0].Name, err)
	}
	seen := map[string]string{} // path -> the variable that set it
	for i := range ovs {
		o := &ovs[i]
		if err := o.apply(root, t, prefix); err != nil {
			return nil, fmt.Errorf("environment %s: %w", o.Name, err)
		}
		key := strings.Join(o.path, "\x00")
		if other, dup := seen[key]; dup {
			return nil, fmt.Errorf("environment %s and %s set the same setting %s", other, o.Name, strings.Join(o.path, "."))
		}
		seen[key] = o.Name
	}
	return ovs, nil
}

// Any reports whether a variable of environ starts with prefix: whether Apply has work.
func Any(prefix string, environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, prefix) {
			return true
		}
	}
	return false
}

// Path returns the dotted key path o set ("server.read_timeout").
func (o Override) Path() string { return strings.Join(o.path, ".") }

// rootMapping returns doc's top mapping, making doc a document of an empty mapping if it is
// empty (or null).
func rootMapping(doc *yaml.Node) (*yaml.Node, error) {
	if doc.Kind == 0 {
		*doc = yaml.Node{Kind: yaml.DocumentNode}
	}
	if doc.Kind != yaml.DocumentNode {
		return nil, fmt.Errorf("yamlenv: not a document node")
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	root := doc.Content[0]
	if root.Kind == yaml.AliasNode {
		root = derefNode(root)
		doc.Content[0] = root
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the file is not a mapping of settings")
	}
	return root, nil
}

// apply walks t and the mapping m along o's name, creating what is missing, and sets the value.
func (o *Override) apply(m *yaml.Node, t reflect.Type, prefix string) error {
	if !utf8.ValidString(o.Name) || !utf8.ValidString(o.Value) {
		return fmt.Errorf("not valid UTF-8")
	}
	segs := strings.Split(o.Name[len(prefix):], Sep)
	for i, s := range segs {
		if s == "" {
			return fmt.Errorf("empty level %d in the name (levels are separated by %q)", i+1, Sep)
		}
	}
	shared := false // below an alias
	for i, seg := range segs {
		t = deref(t)
		last := i == len(segs)-1
		var key string
		var byName bool // the key is a map key, matched loosely
		switch t.Kind() {
		case reflect.Struct:
			f, ok := field(t, seg)
			if !ok {
				return fmt.Errorf("no setting %q in %s", strings.ToLower(seg), where(o.path))
			}
			key, t = f.name, f.typ
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return fmt.Errorf("%s cannot be set from the environment", where(o.path))
			}
			key, t, byName = seg, t.Elem(), true
		default:
			return fmt.Errorf("%s is a setting, not a section: it has no %q", where(o.path), strings.ToLower(seg))
		}
		kn, vn, err := lookup(m, key, byName)
		if err != nil {
			return fmt.Errorf("%s: %w", where(o.path), err)
		}
		if kn == nil { // not in the file: add it
			kn = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
			vn = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""}
			m.Content = append(m.Content, kn, vn)
		}
		o.path = append(o.path, kn.Value)
		vi := indexOf(m, vn)
		if last {
			v, err := valueNode(t, o.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", o.Path(), err)
			}
			m.Content[vi] = v
			return nil
		}
		if vn.Kind == yaml.AliasNode { // from here on, nodes are shared with the anchor's
			vn, shared = derefNode(vn), true
		}
		if isNull(vn) {
			vn = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		if vn.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping in the file", o.Path())
		}
		if shared { // copy on write: the anchor and its other aliases keep their value
			c := *vn
			c.Anchor, c.Content = "", slices.Clone(vn.Content)
			vn = &c
		}
		m.Content[vi] = vn
		m = vn
	}
	return nil
}

// valueNode is the node of value for a setting of type t: a plain scalar, or for a list of
// scalars a sequence of the comma-separated items. It decodes the node into a t to check that
// the setting takes it.
func valueNode(t reflect.Type, value string) (*yaml.Node, error) {
	var n *yaml.Node
	switch bt := deref(t); {
	case scalar(bt):
		n = plain(value)
	case bt.Kind() == reflect.Slice && scalar(deref(bt.Elem())):
		n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		if strings.TrimSpace(value) != "" {
			for _, item := range strings.Split(value, ",") {
				n.Content = append(n.Content, plain(strings.TrimSpace(item)))
			}
		}
	case bt.Kind() == reflect.Slice:
		return nil, fmt.Errorf("is a list of sections, which the environment cannot set: set it in the file")
	default:
		return nil, fmt.Errorf("is a section, not a setting: name one of its settings")
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return nil, fmt.Errorf("value %q refused: %w", value, err)
	}
	return n, nil
}

// plain is a scalar whose type is resolved from its text, as in a file; "" is null.
func plain(value string) *yaml.Node {
	if value == "" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	n.Tag = n.ShortTag() // the tag the text resolves to ("5s" !!str, "100" !!int, "" !!null)
	return n
}

// scalar reports whether t is set by one scalar.
func scalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

type fieldInfo struct {
	name string
	typ  reflect.Type
}

// field finds the exported field of struct t whose yaml key is seg (case aside), looking into
// inline fields too. Fields tagged "-" are not settings.
func field(t reflect.Type, seg string) (fieldInfo, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			if fi, ok := field(deref(f.Type), seg); ok {
				return fi, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the yaml package's default key
		}
		if strings.EqualFold(name, seg) {
			return fieldInfo{name: name, typ: f.Type}, true
		}
	}
	return fieldInfo{}, false
}

// lookup finds key in mapping m: exactly for a struct field, loosely (normalized) for a map
// key. A map key the file holds twice under the same normal form is ambiguous.
func lookup(m *yaml.Node, key string, byName bool) (k, v *yaml.Node, err error) {
	want := key
	if byName {
		want = normal(key)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn := m.Content[i]
		got := kn.Value
		if byName {
			got = normal(got)
		}
		if got != want {
			continue
		}
		if k != nil {
			return nil, nil, fmt.Errorf("both %q and %q match %q", k.Value, kn.Value, key)
		}
		k, v = kn, m.Content[i+1]
	}
	return k, v, nil
}

// normal lower-cases s and reads every character other than a letter or a digit as "_".
func normal(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func indexOf(m *yaml.Node, v *yaml.Node) int {
	for i := 1; i < len(m.Content); i += 2 {
		if m.Content[i] == v {
			return i
		}
	}
	panic("yamlenv: value not in its mapping")
}

func where(path []string) string {
	if len(path) == 0 {
		return "the top level"
	}
	return strings.Join(path, ".")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// derefNode follows aliases.
func derefNode(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// deref follows pointers.
func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
