package config

import (
	"sort"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyPart formats one part of a key path: bare keys as they are, other keys
// quoted.
func keyPart(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(s)
		}
	}
	return s
}

// joinKey appends part to the dotted path prefix.
func joinKey(prefix, part string) string {
	if prefix == "" {
		return keyPart(part)
	}
	return prefix + "." + keyPart(part)
}

// indexKey is the path of element i of the array at path.
func indexKey(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// lineIndex converts byte offsets into 1-based line numbers.
type lineIndex []int // offsets of the '\n' bytes

func newLineIndex(data []byte) lineIndex {
	var idx lineIndex
	for i, c := range data {
		if c == '\n' {
			idx = append(idx, i)
		}
	}
	return idx
}

func (l lineIndex) line(offset int) int {
	// Number of newlines strictly before offset, plus one.
	return sort.SearchInts(l, offset) + 1
}

// keyLines maps every key path of a TOML document (tables, keys, array
// elements: "pool", "pool.bind", "pool.backends[1]") to the line where it is
// first defined. The document must already be known to be valid TOML; on a
// parse error, what was gathered so far is returned.
func keyLines(data []byte) map[string]int {
	lines := make(map[string]int)
	idx := newLineIndex(data)
	record := func(path string, line int) {
		if _, ok := lines[path]; !ok {
			lines[path] = line
		}
	}
	nodeLine := func(n *unstable.Node, fallback int) int {
		for n != nil && n.Valid() {
			if n.Raw.Length > 0 {
				return idx.line(int(n.Raw.Offset))
			}
			n = n.Child() // arrays carry no range: use their first element
		}
		return fallback
	}
	// keyPath walks the dotted key it, recording every intermediate table,
	// and returns the full path and the line of its first part.
	keyPath := func(prefix string, it unstable.Iterator) (string, int) {
		path, line := prefix, 0
		for it.Next() {
			k := it.Node()
			if line == 0 {
				line = nodeLine(k, 1)
			}
			path = joinKey(path, string(k.Data))
			record(path, line)
		}
		return path, line
	}
	var value func(path string, v *unstable.Node, line int)
	value = func(path string, v *unstable.Node, line int) {
		switch v.Kind {
		case unstable.Array:
			i := 0
			it := v.Children()
			for it.Next() {
				e := it.Node()
				if e.Kind == unstable.Comment {
					continue
				}
				p := indexKey(path, i)
				l := nodeLine(e, line)
				record(p, l)
				value(p, e, l)
				i++
			}
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				kv := it.Node()
				if kv.Kind != unstable.KeyValue {
					continue
				}
				p, l := keyPath(path, kv.Key())
				value(p, kv.Value(), l)
			}
		}
	}

	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	arrayTables := make(map[string]int)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			prefix, _ = keyPath("", e.Key())
		case unstable.ArrayTable:
			path, line := keyPath("", e.Key())
			i := arrayTables[path]
			arrayTables[path] = i + 1
			prefix = indexKey(path, i)
			record(prefix, line)
		case unstable.KeyValue:
			path, line := keyPath(prefix, e.Key())
			value(path, e.Value(), line)
		}
	}
	return lines
}

// tableAt returns the table in effect for key-values on the given line (the
// last [table] header before it; "[[x]]" gives "x[i]"), and whether the line
// holds a table header itself. Parsing stops at the first syntax error.
func tableAt(data []byte, line int) (prefix string, header bool) {
	idx := newLineIndex(data)
	var p unstable.Parser
	p.Reset(data)
	arrayTables := make(map[string]int)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.ArrayTable {
			continue
		}
		path, l := "", 0
		it := e.Key()
		for it.Next() {
			k := it.Node()
			if l == 0 {
				l = idx.line(int(k.Raw.Offset))
			}
			path = joinKey(path, string(k.Data))
		}
		if l > line {
			break
		}
		if l == line {
			return "", true
		}
		if e.Kind == unstable.ArrayTable {
			i := arrayTables[path]
			arrayTables[path] = i + 1
			path = indexKey(path, i)
		}
		prefix = path
	}
	return prefix, false
}
