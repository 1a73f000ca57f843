package cache

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

func TestKeySameInputsSameKey(t *testing.T) {
	build := func() Key {
		var k KeyBuilder
		k.AddString("app")
		k.AddString("app")
		k.AddString("settings-1")
		k.AddUint('P')
		k.AddString("SELECT * FROM t WHERE id = $1")
		k.AddBytes([]byte("42"))
		k.AddNull()
		return k.Sum()
	}
	if a, b := build(), build(); a != b {
		t.Fatalf("same inputs: %v != %v", a, b)
	}
	var k KeyBuilder
	k.AddString("x")
	first := k.Sum()
	k.Reset()
	k.AddString("x")
	if k.Sum() != first {
		t.Fatal("Reset did not start over")
	}
	if k.Sum() != k.Sum() {
		t.Fatal("Sum changed the builder")
	}
}

func TestKeyDistinctInputs(t *testing.T) {
	type parts []func(*KeyBuilder)
	s := func(v string) func(*KeyBuilder) { return func(k *KeyBuilder) { k.AddString(v) } }
	b := func(v string) func(*KeyBuilder) { return func(k *KeyBuilder) { k.AddBytes([]byte(v)) } }
	u := func(v uint64) func(*KeyBuilder) { return func(k *KeyBuilder) { k.AddUint(v) } }
	null := func(k *KeyBuilder) { k.AddNull() }
	cases := map[string]parts{
		"ab,c":          {s("ab"), s("c")},
		"a,bc":          {s("a"), s("bc")},
		"abc":           {s("abc")},
		"a,b,c":         {s("a"), s("b"), s("c")},
		"empty":         {s("")},
		"null":          {null},
		"none":          {},
		"empty,empty":   {s(""), s("")},
		"null,empty":    {null, s("")},
		"empty,null":    {s(""), null},
		"u0":            {u(0)},
		"u1":            {u(1)},
		"u1,u0":         {u(1), u(0)},
		"db1 user":      {s("db1"), s("user")},
		"db user1":      {s("db"), s("1user")},
		"param 1":       {s("SELECT $1"), b("1")},
		"param 2":       {s("SELECT $1"), b("2")},
		"param null":    {s("SELECT $1"), null},
		"param empty":   {s("SELECT $1"), b("")},
		"format text":   {s("SELECT $1"), u(0), b("1")},
		"format binary": {s("SELECT $1"), u(1), b("1")},
	}
	// Many generated inputs too.
	for i := range 20000 {
		cases[fmt.Sprintf("gen%d", i)] = parts{s("app"), s(fmt.Sprintf("SELECT %d", i))}
	}
	seen := map[Key]string{}
	for name, ps := range cases {
		var k KeyBuilder
		for _, p := range ps {
			p(&k)
		}
		key := k.Sum()
		if other, dup := seen[key]; dup {
			t.Fatalf("%s and %s have the same key", name, other)
		}
		seen[key] = name
	}
}

func TestKeyBuilderReleasesHugeBuffer(t *testing.T) {
	var k KeyBuilder
	k.AddBytes(make([]byte, 1<<20))
	k.Reset()
	if cap(k.buf) > keyBufKeep {
		t.Fatalf("kept a %d-byte buffer", cap(k.buf))
	}
}

// A 60-byte query and two parameters, as the proxy would key an extended-
// protocol execution.
var (
	benchQuery = "SELECT id, name, email FROM users WHERE id = $1 AND org = $2"
	benchP1    = []byte("1234567")
	benchP2    = []byte("42")
)

func buildBenchKey(k *KeyBuilder) Key {
	k.Reset()
	k.AddString("app")
	k.AddString("app")
	k.AddString("search_path=public;TimeZone=UTC")
	k.AddUint('P'<<16 | 'B'<<8 | 'E')
	k.AddString(benchQuery)
	k.AddUint(2)
	k.AddUint(0)
	k.AddBytes(benchP1)
	k.AddBytes(benchP2)
	k.AddUint(0)
	return k.Sum()
}

func BenchmarkKeyBuilder(b *testing.B) {
	var k KeyBuilder
	b.ReportAllocs()
	for b.Loop() {
		buildBenchKey(&k)
	}
}

// BenchmarkKeySHA256 is the alternative that was measured against
// KeyBuilder's two maphash sums: the same parts through SHA-256.
func BenchmarkKeySHA256(b *testing.B) {
	var k KeyBuilder
	buildBenchKey(&k)
	var out [32]byte
	b.ReportAllocs()
	for b.Loop() {
		buildBenchKey(&k)
		out = sha256.Sum256(k.buf)
	}
	_ = out
}
