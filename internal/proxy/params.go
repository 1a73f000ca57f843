package proxy

import (
	"sort"
	"strings"
)

// ParamSet is an interned, immutable set of session parameters (GUC name →
// value) that a client asked for in its startup packet or changed with SET
// (for parameters the server reports). Two connections with the same settings
// share one *ParamSet per loop, so "does this server match this client" is a
// pointer comparison on the per-query path.
type ParamSet struct {
	keys, vals []string // sorted by key
	canon      string
}

// Get returns the value of k and whether it is set.
func (p *ParamSet) Get(k string) (string, bool) {
	i := sort.SearchStrings(p.keys, k)
	if i < len(p.keys) && p.keys[i] == k {
		return p.vals[i], true
	}
	return "", false
}

// Len returns the number of parameters.
func (p *ParamSet) Len() int { return len(p.keys) }

// Each calls fn for every parameter in key order.
func (p *ParamSet) Each(fn func(k, v string)) {
	for i, k := range p.keys {
		fn(k, p.vals[i])
	}
}

type paramInterner struct {
	m     map[string]*ParamSet
	empty *ParamSet
	strs  map[string]string
}

func (pi *paramInterner) init() {
	pi.m = make(map[string]*ParamSet)
	pi.strs = make(map[string]string)
	pi.empty = &ParamSet{}
	pi.m[""] = pi.empty
}

// str interns s (user names, database names, parameter names and values).
func (pi *paramInterner) str(b []byte) string {
	if s, ok := pi.strs[string(b)]; ok {
		return s
	}
	if len(pi.strs) > 100000 {
		return string(b) // bound the table; a flood of distinct names is not interned
	}
	s := string(b)
	pi.strs[s] = s
	return s
}

// make interns a set from unsorted key/value pairs (later pairs win).
func (pi *paramInterner) make(kv []string) *ParamSet {
	if len(kv) == 0 {
		return pi.empty
	}
	idx := make([]int, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		dup := false
		for j, e := range idx {
			if kv[e] == kv[i] {
				idx[j] = i
				dup = true
			}
		}
		if !dup {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return kv[idx[a]] < kv[idx[b]] })
	var sb strings.Builder
	for _, i := range idx {
		sb.WriteString(kv[i])
		sb.WriteByte(0)
		sb.WriteString(kv[i+1])
		sb.WriteByte(0)
	}
	canon := sb.String()
	if p, ok := pi.m[canon]; ok {
		return p
	}
	p := &ParamSet{canon: canon}
	for _, i := range idx {
		p.keys = append(p.keys, pi.str([]byte(kv[i])))
		p.vals = append(p.vals, pi.str([]byte(kv[i+1])))
	}
	if len(pi.m) < 100000 {
		pi.m[canon] = p
	}
	return p
}

// with returns p with k set to v (interned).
func (pi *paramInterner) with(p *ParamSet, k, v string) *ParamSet {
	if cur, ok := p.Get(k); ok && cur == v {
		return p
	}
	kv := make([]string, 0, 2*len(p.keys)+2)
	for i, key := range p.keys {
		kv = append(kv, key, p.vals[i])
	}
	kv = append(kv, k, v)
	return pi.make(kv)
}

// untrackedReports are server-reported parameters that are not session
// settings a client can change, so the proxy does not follow them per client.
var untrackedReports = map[string]bool{
	"server_version": true, "server_encoding": true, "integer_datetimes": true,
	"is_superuser": true, "session_authorization": true, "in_hot_standby": true,
	"scram_iterations": true,
}

// validParamName reports whether a parameter name from a client may be
// used in a SET statement (letters, digits, '_' and '.').
func validParamName(k string) bool {
	if k == "" || len(k) > 63 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '.' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// appendSyncQuery appends the SQL that turns a server with parameters `have`
// into one with `want`: SET for every differing key, RESET for keys only
// `have` sets.
func appendSyncQuery(dst []byte, have, want *ParamSet) []byte {
	i, j := 0, 0
	for i < len(have.keys) || j < len(want.keys) {
		switch {
		case j >= len(want.keys) || (i < len(have.keys) && have.keys[i] < want.keys[j]):
			dst = append(dst, "RESET "...)
			dst = append(dst, have.keys[i]...)
			dst = append(dst, ';')
			i++
		case i >= len(have.keys) || want.keys[j] < have.keys[i]:
			dst = appendSet(dst, want.keys[j], want.vals[j])
			j++
		default:
			if have.vals[i] != want.vals[j] {
				dst = appendSet(dst, want.keys[j], want.vals[j])
			}
			i++
			j++
		}
	}
	return dst
}

func appendSet(dst []byte, k, v string) []byte {
	dst = append(dst, "SET "...)
	dst = append(dst, k...)
	dst = append(dst, " = '"...)
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' {
			dst = append(dst, '\'')
		}
		dst = append(dst, v[i])
	}
	return append(dst, "';"...)
}
