package engine

import (
	"container/list"
	"time"
)

// ttlCache is a bounded map whose entries expire a fixed time after their last write;
// the oldest write goes first when it is full. Not safe for concurrent use (the engine
// holds its lock).
type ttlCache[V any] struct {
	ttl     time.Duration
	max     int
	items   map[string]*list.Element
	order   *list.List              // of *ttlItem[V], oldest write first
	evicted func(key string, val V) // called for entries dropped for age or room
}

type ttlItem[V any] struct {
	key     string
	val     V
	written time.Time
}

func newTTLCache[V any](ttl time.Duration, max int, evicted func(string, V)) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, max: max, items: map[string]*list.Element{}, order: list.New(), evicted: evicted}
}

// get returns the value of key if it was written less than ttl before now.
func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	it := el.Value.(*ttlItem[V])
	if now.Sub(it.written) >= c.ttl {
		c.evict(el)
		return zero, false
	}
	return it.val, true
}

// put writes key (refreshing its age) and evicts expired and excess entries.
func (c *ttlCache[V]) put(key string, val V, now time.Time) {
	if el, ok := c.items[key]; ok {
		it := el.Value.(*ttlItem[V])
		it.val, it.written = val, now
		c.order.MoveToBack(el)
	} else {
		c.items[key] = c.order.PushBack(&ttlItem[V]{key: key, val: val, written: now})
	}
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		it := el.Value.(*ttlItem[V])
		if len(c.items) <= c.max && now.Sub(it.written) < c.ttl {
			break
		}
		c.evict(el)
	}
}

func (c *ttlCache[V]) evict(el *list.Element) {
	it := el.Value.(*ttlItem[V])
	c.remove(el)
	if c.evicted != nil {
		c.evicted(it.key, it.val)
	}
}

func (c *ttlCache[V]) delete(key string) (V, bool) {
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	v := el.Value.(*ttlItem[V]).val
	c.remove(el)
	return v, true
}

func (c *ttlCache[V]) remove(el *list.Element) {
	delete(c.items, el.Value.(*ttlItem[V]).key)
	c.order.Remove(el)
}

func (c *ttlCache[V]) len() int { return len(c.items) }
