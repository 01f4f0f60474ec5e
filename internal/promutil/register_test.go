package promutil

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterOrReuse(t *testing.T) {
	newCounter := func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"l"})
	}

	t.Run("a first registration returns the collector itself", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := newCounter()
		if got := RegisterOrReuse(reg, c); got != c {
			t.Fatal("got another collector")
		}
	})

	t.Run("a second registration of the same metric returns the first collector", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		first := RegisterOrReuse(reg, newCounter())
		second := RegisterOrReuse(reg, newCounter())
		if second != first {
			t.Fatal("second registration did not reuse the first collector")
		}
		second.WithLabelValues("a").Inc()
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 1 {
			t.Fatalf("gathered %v, %v: want one series counted once", mfs, err)
		}
	})

	t.Run("a nil registry registers nothing", func(t *testing.T) {
		c := newCounter()
		if got := RegisterOrReuse(nil, c); got != c {
			t.Fatal("got another collector")
		}
	})

	t.Run("a different kind under the same name panics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		RegisterOrReuse(reg, newCounter())
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		RegisterOrReuse(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_total", Help: "x"}, []string{"l"}))
	})
}
