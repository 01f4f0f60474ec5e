# misp-trust-operator — developer entry points. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GO           ?= go
BIN          := $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -s -w -X main.version=$(VERSION)

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	@if compgen -G "controllers/*.go" >/dev/null || compgen -G "controllers/*/*.go" >/dev/null; then \
	  $(CONTROLLER_GEN) rbac:roleName=misp-trust-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac; \
	fi

.PHONY: fmt
fmt: ## Run gofmt on every Go file.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: envtest
envtest: ## Build (once, cached) kube-apiserver and etcd for envtest.
	@bash hack/envtest-assets.sh >/dev/null

.PHONY: test
test: ## Run all tests against a real kube-apiserver and etcd (builds them the first time).
	@assets="$$(bash hack/envtest-assets.sh)"; \
	  echo "KUBEBUILDER_ASSETS=$$assets"; \
	  KUBEBUILDER_ASSETS="$$assets" $(GO) test -count=1 -timeout 20m ./...

.PHONY: verify
verify: generate manifests ## Fail when generated files or formatting are stale; run go vet.
	@git diff --exit-code -- api config || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config | grep '^??')" || { echo "untracked generated files: commit them"; git status --porcelain -- api config; exit 1; }
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	@mv $(BIN)/controller-gen $(CONTROLLER_GEN)
