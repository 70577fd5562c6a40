package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable Load reads.
const EnvPrefix = "LIVEDASH_"

// maxFileBytes bounds what Load reads: a configuration file is small, and a
// wrong path (a log, a database) should fail fast rather than be parsed.
const maxFileBytes = 1 << 20

// walkBudget bounds the YAML nodes one file may expand to, so that aliases
// referring to aliases (a "billion laughs" document) cannot make Load explode.
const walkBudget = 100_000

// Load builds the configuration: Default values, then the YAML file at path
// (skipped when path is ""), then the LIVEDASH_* variables in environ (an
// os.Environ-style "NAME=value" slice; XDG_STATE_HOME is read from it too).
// Flags are the caller's: set fields on the result, then call Validate.
//
// Unknown keys in the file and unknown LIVEDASH_* variables are problems, as
// are values that do not parse. Load reports them all in one *Errors and
// still returns a Config holding every value that did parse (defaults for the
// rest), so a caller may apply flags and Validate it and report both lists
// together, e.g. errors.Join(loadErr, cfg.Validate()). A file that cannot be
// read is an ordinary error (joined with any environment problems); the
// Config then holds defaults and the environment.
//
// Load does not call Validate.
func Load(path string, environ []string) (Config, error) {
	cfg, _, err := LoadWithOrigin(path, environ)
	return cfg, err
}

// LoadWithOrigin is Load that also says where each value came from, so that
// the problems Validate finds later can name the file's line or the
// environment variable (Origin.Locate).
func LoadWithOrigin(path string, environ []string) (Config, *Origin, error) {
	cfg := defaults(lookup(environ))
	o := &Origin{File: path, lines: map[string]int{}, set: map[string]string{}}
	var readErr error
	var ps problems
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			readErr = err
		} else {
			ps = append(ps, decodeYAMLLines(&cfg, data, o.lines)...)
		}
	}
	ps = append(ps, applyEnvOrigin(&cfg, environ, o)...)
	switch perr := ps.err(); {
	case readErr != nil && perr != nil:
		return cfg, o, errors.Join(readErr, perr)
	case readErr != nil:
		return cfg, o, readErr
	default:
		return cfg, o, perr
	}
}

// Origin records where a loaded configuration's values came from: the line
// of each key in the file, the environment variable or flag that set it
// last. The zero value knows nothing; methods on a nil *Origin do nothing.
type Origin struct {
	File  string            // the file's path, "" when none was read
	lines map[string]int    // key path → line of its value in the file
	set   map[string]string // key path → the variable or flag that overrode the file
}

// SetBy records that what (a flag, "--listen") set the key at path, after
// the file and the environment.
func (o *Origin) SetBy(path, what string) {
	if o != nil {
		o.set[path] = what
	}
}

// Where says where the value at path came from: "line 12", "LIVEDASH_LISTEN",
// "--listen", or "" for a default. A key inside an item of a list in the
// file (a label matcher, a field the item leaves out) is at the line of the
// closest part of it the file has.
func (o *Origin) Where(path string) string {
	if o == nil {
		return ""
	}
	if w, ok := o.set[path]; ok {
		return w
	}
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := o.lines[p]; ok && (p == path || strings.Contains(p, "[")) {
			return fmt.Sprintf("line %d", n)
		}
	}
	return ""
}

// parentPath drops the last key or index of a key path:
// "a.b[2].c" → "a.b[2]" → "a.b" → "a" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Locate appends where the value came from — "(line 12)", "(LIVEDASH_LISTEN)",
// "(--listen)", or "(default value)" for a key that was never set — to the
// reason of every problem in err's *Errors that does not say it yet
// (Validate's), and returns err.
func (o *Origin) Locate(err error) error {
	if o == nil {
		return err
	}
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *Errors:
			for i := range e.Problems {
				p := &e.Problems[i]
				if strings.HasPrefix(p.Path, EnvPrefix) || strings.Contains(p.Reason, "(line ") {
					continue // Load's problems say where they are
				}
				where := o.Where(p.Path)
				if where == "" {
					where = "default value"
				}
				p.Reason += " (" + where + ")"
			}
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return err
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// lookup returns a getenv over an os.Environ-style slice; the last entry of a
// name wins, as it does for a process environment.
func lookup(environ []string) func(string) string {
	return func(name string) string {
		v := ""
		for _, kv := range environ {
			if k, val, ok := strings.Cut(kv, "="); ok && k == name {
				v = val
			}
		}
		return v
	}
}

// decodeYAML applies data onto cfg and returns the problems found.
//
// The document is first walked against the Config type to report every
// unknown key and every value that does not parse with its key path and line
// (the yaml library stops at the first unknown key and names Go types, not
// key paths). When the walk finds nothing, the document is decoded again by
// the yaml library with KnownFields(true) onto the original cfg, so the
// library's strict decoding stays the authority and anything the walk does
// not model (keys inside maps of structures) is still rejected.
func decodeYAML(cfg *Config, data []byte) problems { return decodeYAMLLines(cfg, data, nil) }

// decodeYAMLLines is decodeYAML that also records the line of every key's
// value in lines (nil: not recorded).
func decodeYAMLLines(cfg *Config, data []byte, lines map[string]int) problems {
	var ps problems
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file configures nothing
		}
		ps.add("", nil, "invalid YAML: "+cleanYAMLError(err))
		return ps
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		ps.add("", nil, fmt.Sprintf("a config file holds one YAML document; another starts at line %d", extra.Line))
		return ps
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode && root.ShortTag() != "!!null" {
		ps.add("", nil, fmt.Sprintf("the top level must be a mapping of keys such as \"listen:\" (line %d)", root.Line))
		return ps
	}

	base := *cfg
	w := walker{budget: walkBudget, lines: lines}
	w.value(root, reflect.ValueOf(cfg).Elem(), "")
	if len(w.ps) > 0 {
		return w.ps
	}
	strict := base
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) {
		ps.add("", nil, cleanYAMLError(err))
		return ps
	}
	*cfg = strict
	return nil
}

// cleanYAMLError drops the library's "yaml: " prefix and joins a TypeError's
// lines.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// walker applies a YAML node tree onto a value, recording problems and,
// when lines is not nil, the line of every value by key path.
type walker struct {
	ps     problems
	budget int
	lines  map[string]int
}

var (
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodesItself reports whether values of t are decoded by their own method
// rather than field by field.
func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(yamlUnmarshalerType) || p.Implements(textUnmarshalerType)
}

func isStruct(t reflect.Type) bool { return t.Kind() == reflect.Struct && !decodesItself(t) }

func (w *walker) value(n *yaml.Node, v reflect.Value, path string) {
	if w.budget--; w.budget < 0 {
		if w.budget == -1 {
			w.ps.add(path, nil, fmt.Sprintf("document too large or too many aliases (more than %d values)", walkBudget))
		}
		return
	}
	if w.lines != nil && path != "" {
		w.lines[path] = n.Line // the alias's line: where the reader set it
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// As the yaml library does: null empties pointers, maps and lists
		// and leaves other values (the defaults) alone.
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			v.Set(reflect.Zero(v.Type()))
		}
		return
	}
	t := v.Type()
	switch {
	case isStruct(t):
		if n.Kind != yaml.MappingNode {
			w.ps.add(path, scalarValue(n), fmt.Sprintf("must be a mapping of keys (line %d)", n.Line))
			return
		}
		w.mapping(n, v, path)
	case t.Kind() == reflect.Slice && isStruct(t.Elem()) && !decodesItself(t):
		if n.Kind != yaml.SequenceNode {
			w.ps.add(path, scalarValue(n), fmt.Sprintf("must be a list (line %d)", n.Line))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			w.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		nv := reflect.New(t)
		if err := n.Decode(nv.Interface()); err != nil {
			w.ps.add(path, scalarValue(n), fmt.Sprintf("%s (line %d)", leafReason(t, err), n.Line))
			return
		}
		v.Set(nv.Elem())
	}
}

func (w *walker) mapping(n *yaml.Node, v reflect.Value, path string) {
	fields := yamlFields(v.Type())
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			w.merge(val, v, path)
			continue
		}
		name := k.Value
		kp := joinPath(path, name)
		if line, dup := seen[name]; dup {
			w.ps.add(kp, nil, fmt.Sprintf("key given twice (lines %d and %d)", line, k.Line))
			continue
		}
		seen[name] = k.Line
		f, ok := fields[name]
		if !ok || k.Kind != yaml.ScalarNode {
			w.ps.add(kp, nil, fmt.Sprintf("unknown key (line %d)%s", k.Line, suggest(name, path, fields)))
			continue
		}
		w.value(val, v.FieldByIndex(f.index), kp)
	}
}

// merge applies a YAML merge key ("<<: *defaults"), whose value is one
// mapping or a list of them.
func (w *walker) merge(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			w.merge(item, v, path)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		w.ps.add(joinPath(path, "<<"), nil, fmt.Sprintf("a merge key takes a mapping (line %d)", n.Line))
		return
	}
	w.value(n, v, path)
}

// scalarValue is the text of a scalar node for a Problem, shortened; other
// nodes have no single value to show.
func scalarValue(n *yaml.Node) any {
	if n.Kind != yaml.ScalarNode {
		return nil
	}
	const max = 80
	if len(n.Value) > max {
		return n.Value[:max] + "…"
	}
	return n.Value
}

// leafReason says why a value of type t could not be decoded.
func leafReason(t reflect.Type, err error) string {
	var de *DurationError
	if errors.As(err, &de) {
		return de.Reason
	}
	if !decodesItself(t) {
		if r := kindReason(t); r != "" {
			return r
		}
	}
	return cleanYAMLError(err)
}

// kindReason describes what a value of t must look like, or "" when there is
// nothing simpler to say than the decoder's own message.
func kindReason(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "must be true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "must be a whole number in range"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "must be a non-negative whole number in range"
	case reflect.Float32, reflect.Float64:
		return "must be a number"
	case reflect.String:
		return "must be a single value, not a list or mapping"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "must be a list of strings"
		}
	}
	return ""
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

type field struct {
	index []int
	typ   reflect.Type
}

// yamlFields maps the yaml keys of struct type t to its fields, following the
// yaml library's rules: the tag's name, else the lower-cased field name;
// "-" skips; ",inline" lifts a struct's keys into t.
func yamlFields(t reflect.Type) map[string]field {
	out := make(map[string]field)
	var add func(t reflect.Type, prefix []int)
	add = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			tag := sf.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			index := append(slices.Clone(prefix), i)
			if slices.Contains(strings.Split(opts, ","), "inline") && sf.Type.Kind() == reflect.Struct {
				add(sf.Type, index)
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			out[name] = field{index: index, typ: sf.Type}
		}
	}
	add(t, nil)
	return out
}

// suggest returns a "did you mean" hint for a misspelt key, or "".
func suggest(name, path string, fields map[string]field) string {
	best, bestDist := "", 3
	for k := range fields {
		if d := EditDistance(strings.ToLower(name), k); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist > len(best)/2 {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", joinPath(path, best))
}

// EditDistance is the Levenshtein distance between a and b in bytes: how
// close a misspelt name is to a known one, for "did you mean" hints.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envKey is one configuration key that an environment variable can set.
type envKey struct {
	path     string // yaml key path, "store.retention.max_age"
	index    []int  // field index chain from Config
	fileOnly bool   // lists of structures and maps: no text form
}

// envKeys is envKeysFor(Config), computed once.
var envKeys = sync.OnceValues(func() (map[string]envKey, error) {
	return envKeysFor(reflect.TypeFor[Config]())
})

// envKeysFor derives the environment variable of every key of struct type t
// from the yaml tags, so keys added later (collectors included) get one
// without being listed anywhere. Two keys mapping to one name is a
// programming error.
func envKeysFor(t reflect.Type) (map[string]envKey, error) {
	out := make(map[string]envKey)
	var walk func(t reflect.Type, path string, index []int) error
	walk = func(t reflect.Type, path string, index []int) error {
		fields := yamlFields(t)
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			f := fields[name]
			p := joinPath(path, name)
			idx := append(slices.Clone(index), f.index...)
			if isStruct(f.typ) {
				if err := walk(f.typ, p, idx); err != nil {
					return err
				}
				continue
			}
			env := EnvName(p)
			if prev, dup := out[env]; dup {
				return fmt.Errorf("config keys %s and %s both map to %s", prev.path, p, env)
			}
			out[env] = envKey{path: p, index: idx, fileOnly: !textSettable(f.typ)}
		}
		return nil
	}
	if err := walk(t, "", nil); err != nil {
		return nil, err
	}
	return out, nil
}

// EnvName returns the environment variable for a key path:
// EnvName("store.retention.max_age") = "LIVEDASH_STORE_RETENTION_MAX_AGE".
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// textSettable reports whether setFromText can set a value of type t.
func textSettable(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
		if reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return true
		}
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// applyEnv sets the keys named by LIVEDASH_* variables in environ onto cfg.
// Problems are reported in variable-name order.
func applyEnv(cfg *Config, environ []string) problems {
	keys, err := envKeys()
	if err != nil {
		var ps problems
		ps.add("", nil, err.Error())
		return ps
	}
	return applyEnvTo(reflect.ValueOf(cfg).Elem(), keys, environ, nil)
}

// applyEnvOrigin is applyEnv recording in o which variable set each key.
func applyEnvOrigin(cfg *Config, environ []string, o *Origin) problems {
	keys, err := envKeys()
	if err != nil {
		var ps problems
		ps.add("", nil, err.Error())
		return ps
	}
	return applyEnvTo(reflect.ValueOf(cfg).Elem(), keys, environ, o)
}

// applyEnvTo is applyEnv for any struct value root described by keys; o
// (may be nil) learns which variable set which key.
func applyEnvTo(root reflect.Value, keys map[string]envKey, environ []string, o *Origin) problems {
	var ps problems
	vars := make(map[string]string)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvPrefix) {
			vars[name] = val
		}
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		val := vars[name]
		k, ok := keys[name]
		switch {
		case !ok:
			ps.add(name, nil, "unknown environment variable"+suggestEnv(name, keys))
		case k.fileOnly:
			ps.add(name, nil, k.path+" can be set in the config file only")
		default:
			if err := setFromText(root.FieldByIndex(k.index), val); err != nil {
				ps.add(name, val, fmt.Sprintf("%s (%s)", err, k.path))
			}
			o.SetBy(k.path, name)
		}
	}
	return ps
}

func suggestEnv(name string, keys map[string]envKey) string {
	best, bestDist := "", 4
	for k := range keys {
		if d := EditDistance(name, k); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

// reasonError carries a reason meant to be shown as is.
type reasonError string

func (e reasonError) Error() string { return string(e) }

// setFromText sets v from its environment-variable text. []string values are
// comma-separated, with spaces around items and empty items dropped.
func setFromText(v reflect.Value, s string) error {
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if err := tu.UnmarshalText([]byte(s)); err != nil {
			var de *DurationError
			if errors.As(err, &de) {
				return reasonError(de.Reason)
			}
			return err
		}
		return nil
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		p := reflect.New(t.Elem())
		if err := setFromText(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	bad := reasonError(kindReason(t))
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return bad
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return bad
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return bad
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad
		}
		v.SetFloat(f)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(t))
	default:
		return reasonError("cannot be set from the environment")
	}
	return nil
}
