package engine

import (
	"reflect"
	"testing"
	"time"
)

func TestTTLCache(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var evicted []string
	c := newTTLCache(time.Minute, 2, func(k string, v int) { evicted = append(evicted, k) })
	c.put("a", 1, t0)
	c.put("b", 2, t0.Add(10*time.Second))
	if v, ok := c.get("a", t0.Add(59*time.Second)); !ok || v != 1 {
		t.Fatalf("get(a) before its TTL = %v, %v", v, ok)
	}
	c.put("a", 3, t0.Add(20*time.Second)) // rewrite: a is now the youngest
	c.put("c", 4, t0.Add(30*time.Second)) // over capacity: the oldest write (b) goes
	if !reflect.DeepEqual(evicted, []string{"b"}) || c.len() != 2 {
		t.Fatalf("evicted %v, len %d", evicted, c.len())
	}
	if _, ok := c.get("a", t0.Add(80*time.Second)); ok {
		t.Fatal("a outlived its TTL (written at +20s)")
	}
	if !reflect.DeepEqual(evicted, []string{"b", "a"}) {
		t.Fatalf("expiry not reported: %v", evicted)
	}
	if v, ok := c.delete("c"); !ok || v != 4 || c.len() != 0 {
		t.Fatalf("delete = %v, %v; len %d", v, ok, c.len())
	}
	if len(evicted) != 2 {
		t.Fatalf("an explicit delete is not an eviction: %v", evicted)
	}
	c.put("d", 5, t0)
	c.put("e", 6, t0.Add(2*time.Minute)) // sweeps the expired d
	if c.len() != 1 || evicted[len(evicted)-1] != "d" {
		t.Fatalf("expired entry not swept on put: len %d, evicted %v", c.len(), evicted)
	}
}
