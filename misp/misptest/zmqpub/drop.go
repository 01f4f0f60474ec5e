package zmqpub

// Streams of drop decisions. Publish and heartbeats draw from separate
// streams so that which Publish calls are dropped depends only on the seed,
// the rate and the call's position, never on how many heartbeats happened to
// fire in between (that depends on timing).
const (
	streamPublish   uint64 = 0x5055424c495348 // "PUBLISH"
	streamHeartbeat uint64 = 0x4845415254     // "HEART"
)

// dropped reports whether message number n of a stream is lost at the given
// rate. It is a pure function of its arguments (a SplitMix64 hash mapped to
// [0,1)), so a test can replay exactly the same losses with the same seed.
func dropped(seed int64, stream, n uint64, rate float64) bool {
	switch {
	case !(rate > 0): // also catches NaN
		return false
	case rate >= 1:
		return true
	}
	h := splitmix64(splitmix64(uint64(seed)^stream) ^ n)
	u := float64(h>>11) / (1 << 53) // uniform in [0,1)
	return u < rate
}

// splitmix64 is the SplitMix64 finaliser (Steele, Lea, Flood 2014).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
