package memlimit

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cases := []struct {
		name    string
		env     map[string]string
		want    int64
		wantErr bool
	}{
		{"the container's limit, less a margin for what the runtime does not count", map[string]string{EnvVar: "268435456"}, 241591910, false},
		{"an explicit GOMEMLIMIT wins", map[string]string{EnvVar: "268435456", "GOMEMLIMIT": "100MiB"}, math.MaxInt64, false},
		{"no limit given: none set", map[string]string{}, math.MaxInt64, false},
		{"garbage is an error, and sets nothing", map[string]string{EnvVar: "256Mi"}, math.MaxInt64, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			got, err := Apply(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || got != tc.want || debug.SetMemoryLimit(-1) != tc.want {
				t.Errorf("Apply = %d, %v; runtime limit %d; want %d", got, err, debug.SetMemoryLimit(-1), tc.want)
			}
		})
	}
}
