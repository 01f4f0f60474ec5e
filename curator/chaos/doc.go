// Package chaos holds the curator's no-loss chaos test (chaos_test.go): thousands of
// synchronised events from trusted and untrusted organisations while MISP answers 5xx,
// ZeroMQ drops messages, the publisher restarts and the curator restarts, and at the end
// every event is in exactly the state its policy asks for. It is a package of its own so
// that its run time has its own budget; it has no code besides the test.
package chaos
