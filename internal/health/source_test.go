package health

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

type listSource struct {
	addrs []string
	err   error
}

func (s listSource) Backends(context.Context) ([]string, error) { return s.addrs, s.err }

func addrsOf(sh *proxy.Shared) []string {
	var out []string
	for _, b := range sh.Backends() {
		out = append(out, b.Addr)
	}
	return out
}

func TestConfigSourceAndSync(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Pool.Backends = []string{pA, pB}
	src := NewConfigSource(cfg)
	var _ Source = src

	sh := proxy.NewShared(&proxy.Options{}, []string{pA, pB})
	kept := sh.Backends()[0]
	if changed, err := Sync(ctx, src, sh); changed || err != nil {
		t.Fatalf("same list: changed %v err %v", changed, err)
	}

	cfg2 := config.Default()
	cfg2.Pool.Backends = []string{pA, pC}
	src.Update(cfg2)
	cfg2.Pool.Backends[1] = "mutated" // the source holds a copy
	if changed, err := Sync(ctx, src, sh); !changed || err != nil {
		t.Fatalf("new list: changed %v err %v", changed, err)
	}
	if got := addrsOf(sh); !reflect.DeepEqual(got, []string{pA, pC}) {
		t.Fatalf("backends %v", got)
	}
	if sh.Backends()[0] != kept {
		t.Error("Sync lost the state of a backend that stayed")
	}

	if _, err := Sync(ctx, listSource{}, sh); !errors.Is(err, ErrNoBackends) {
		t.Errorf("empty source: %v", err)
	}
	boom := errors.New("patroni unreachable")
	if _, err := Sync(ctx, listSource{err: boom}, sh); !errors.Is(err, boom) {
		t.Errorf("failing source: %v", err)
	}
	if got := addrsOf(sh); !reflect.DeepEqual(got, []string{pA, pC}) {
		t.Fatalf("a failing source changed the backends: %v", got)
	}
}
