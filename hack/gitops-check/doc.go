// Package gitopscheck tests the GitOps health checks in config/gitops: the Argo
// CD health script (config/gitops/argocd/health.lua) run in gopher-lua, the Lua
// VM Argo CD embeds, and the Flux healthCheckExprs (config/gitops/flux) evaluated
// with cel-go the way Flux's kustomize-controller does (RFC-0009 order), on the
// same objects, with the same expected outcome.
//
// It is its own Go module so that gopher-lua never enters the operator's
// go.mod. Run it with `make chart-check` (or `cd hack/gitops-check && go test ./...`).
package gitopscheck
