package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzLoad(f *testing.F) {
	if demo, err := os.ReadFile(filepath.Join("..", "..", "poolmgr.toml")); err == nil {
		f.Add(demo)
	}
	for _, s := range []string{
		"",
		minimal,
		seedPool,
		"[pool]\nbackends = [\n\"127.0.0.1\",\n5,\n]\nrouting = \"fastest\"\nquery_wait_timeout = \"-1s\"\n",
		"pool.backends = [\"h:1\", \"h:1\"]\nlog = { level = \"x\" }\n[[admin]]\n",
		"[pool]\nbackends = [\"[::1]:5432\"]\nserver_lifetime = nan\nshutdown_timeout = 1e300\n[auth]\nauth_file = \".\"\n",
		"[pool]\nbackends = [\"/var/run/postgresql:5432\", \"/var/run//postgresql/:05432\", \"/a:b:1\"]\npinned_roles = [\"/a:b/:1=primary\"]\n",
		"[pool\nbind = ",
		"a = [[[[{}]]]]\n\"x.y\".z = 1979-05-27T07:32:00Z\n",
	} {
		f.Add([]byte(s))
	}
	// One directory per process: fuzz functions run one at a time in it.
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"u" "p"`+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, "poolmgr.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %T %v is not a non-empty *ValidationError", err, err)
			}
			lines := 1
			for _, c := range data {
				if c == '\n' {
					lines++
				}
			}
			for _, p := range ve.Problems {
				if p.File != path || p.Line < 0 || p.Line > lines || p.Msg == "" {
					t.Fatalf("bad problem %+v (%d lines)", p, lines)
				}
			}
			return
		}
		// A loaded config stays valid and yields warnings without panicking.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded config fails Validate: %v", err)
		}
		_ = cfg.Warnings()
		if cfg.EffectivePoolSize() < 1 || cfg.WorkerCount() < 1 {
			t.Fatalf("EffectivePoolSize %d, WorkerCount %d", cfg.EffectivePoolSize(), cfg.WorkerCount())
		}
	})
}
