package zmqpub

import (
	"math"
	"testing"
)

func TestDroppedIsAPureSeededFunction(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		min, max float64 // accepted fraction dropped over 100,000 draws
	}{
		{"zero drops nothing", 0, 0, 0},
		{"negative drops nothing", -0.5, 0, 0},
		{"NaN drops nothing", math.NaN(), 0, 0},
		{"one drops everything", 1, 1, 1},
		{"ten percent", 0.1, 0.095, 0.105},
		{"half", 0.5, 0.49, 0.51},
		{"ninety percent", 0.9, 0.895, 0.905},
	}
	const n = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count := 0
			for i := range uint64(n) {
				d := dropped(42, streamPublish, i, tt.rate)
				if d != dropped(42, streamPublish, i, tt.rate) {
					t.Fatalf("message %d: two answers for the same input", i)
				}
				if d {
					count++
				}
			}
			if f := float64(count) / n; f < tt.min || f > tt.max {
				t.Fatalf("dropped fraction %.4f, want within [%v, %v]", f, tt.min, tt.max)
			}
		})
	}
}

func TestDropStreamsAndSeedsAreIndependent(t *testing.T) {
	same := func(seedA int64, streamA uint64, seedB int64, streamB uint64) int {
		agree := 0
		for i := range uint64(10000) {
			if dropped(seedA, streamA, i, 0.5) == dropped(seedB, streamB, i, 0.5) {
				agree++
			}
		}
		return agree
	}
	// Independent sequences agree about half the time; identical ones always.
	for _, tt := range []struct {
		name  string
		agree int
	}{
		{"other seed", same(1, streamPublish, 2, streamPublish)},
		{"heartbeat stream", same(1, streamPublish, 1, streamHeartbeat)},
	} {
		if tt.agree < 4700 || tt.agree > 5300 {
			t.Errorf("%s: agrees on %d of 10000 decisions, want about half", tt.name, tt.agree)
		}
	}
}
