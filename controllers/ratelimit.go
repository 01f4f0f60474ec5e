package controllers

import (
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// BuildRateLimiter is the work queue rate limiter of both controllers, in the
// manner of external-secrets' BuildRateLimiter: per-object exponential backoff
// (base → max) combined with a global token bucket, whichever asks for the
// longer wait. It applies to failed reconciles; successful ones requeue at
// the (jittered) resync interval.
func BuildRateLimiter(o Options) workqueue.TypedRateLimiter[reconcile.Request] {
	o = o.withDefaults()
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](o.BackoffBase, o.BackoffMax),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(o.ReconcileQPS), o.ReconcileBurst)},
	)
}

// jittered returns d plus up to 20 % so resyncs of many objects spread out.
func jittered(d time.Duration) time.Duration {
	return wait.Jitter(d, resyncJitter)
}
