// Package memlimit sets the Go runtime's soft memory limit (GOMEMLIMIT) from the
// container's memory limit, which the Helm chart hands to both components through the
// downward API (env MISPTRUST_MEMORY_LIMIT from resourceFieldRef limits.memory). Without
// it the heap may grow to twice its live size before a collection, and a process whose
// live data fits its limit is still killed for memory; with it the collector works harder
// as the limit nears.
package memlimit

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// EnvVar holds the container's memory limit in bytes.
const EnvVar = "MISPTRUST_MEMORY_LIMIT"

// Fraction of the container's limit given to the Go runtime: the rest is for what the
// runtime does not count (thread stacks outside the heap, the binary's own pages).
const Fraction = 0.9

// Apply sets the runtime's memory limit to Fraction of getenv(EnvVar), unless GOMEMLIMIT
// is set (an explicit setting wins) or EnvVar is empty. It returns the limit in force
// afterwards (math.MaxInt64: none).
func Apply(getenv func(string) string) (int64, error) {
	raw := strings.TrimSpace(getenv(EnvVar))
	if raw == "" || getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), nil
	}
	limit, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || limit <= 0 {
		return debug.SetMemoryLimit(-1), fmt.Errorf("%s=%q: want the container's memory limit in bytes", EnvVar, raw)
	}
	soft := int64(float64(limit) * Fraction)
	debug.SetMemoryLimit(soft)
	return soft, nil
}
