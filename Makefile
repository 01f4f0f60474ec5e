# misp-trust-operator — developer entry points. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GO           ?= go
BIN          := $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG          ?= ghcr.io/misptrust/misp-trust-operator:$(VERSION)
LDFLAGS      := -s -w -X main.version=$(VERSION)

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

##@ Try it

.PHONY: demo
demo: build envtest ## Run the whole operator end to end on this machine (real kube-apiserver, MISP double), print what it did, clean up.
	@KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh 2>/dev/null)" $(BIN)/demo

.PHONY: demo-serve
demo-serve: build envtest ## Like demo, then keep everything running to explore (Ctrl-C stops).
	@KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh 2>/dev/null)" $(BIN)/demo -serve

.PHONY: bench
bench: ## Benchmark the curation engine against the MISP double (events/s, latency, MISP calls and bytes per event, RSS).
	$(GO) run ./hack/bench $(BENCH_FLAGS)

.PHONY: membench
membench: build envtest ## Measure both components' peak memory for a large trust list (real kube-apiserver, MISP double, the chart's memory limits); prints one JSON line.
	@KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh 2>/dev/null)" $(GO) run ./hack/membench $(MEMBENCH_FLAGS)

.PHONY: build
build: ## Build bin/misp-trust-operator (and its kubectl plugin link bin/kubectl-misptrust), bin/mispsim and bin/demo.
	@echo "building bin/misp-trust-operator (+ bin/kubectl-misptrust), bin/mispsim and bin/demo"
	@$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/misp-trust-operator .
	@ln -sf misp-trust-operator $(BIN)/kubectl-misptrust
	@$(GO) build -o $(BIN)/mispsim ./hack/mispsim
	@$(GO) build -o $(BIN)/demo ./hack/demo

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
	$(CONTROLLER_GEN) rbac:roleName=misp-trust-curator,fileName=curator_role.yaml paths=./curator/... output:rbac:artifacts:config=config/rbac
	bash hack/chart-crds.sh
	bash hack/argocd-cm-patch.sh
	bash hack/monitoring-sync.sh

.PHONY: fmt
fmt: ## Run gofmt on every Go file.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: envtest
envtest: ## Build (once, cached) kube-apiserver and etcd for envtest.
	@bash hack/envtest-assets.sh >/dev/null

.PHONY: helm
helm: ## Build (once, cached) Helm for the chart tests.
	@bash hack/helm.sh >/dev/null

.PHONY: test
test: ## Run all tests against a real kube-apiserver and etcd (builds them the first time).
	@assets="$$(bash hack/envtest-assets.sh)"; helm="$$(bash hack/helm.sh)"; \
	  echo "KUBEBUILDER_ASSETS=$$assets HELM=$$helm"; \
	  KUBEBUILDER_ASSETS="$$assets" HELM="$$helm" $(GO) test -count=1 -timeout 20m ./...
	cd hack/gitops-check && $(GO) test -count=1 ./...
	cd hack/monitoring && $(GO) test -count=1 ./...

.PHONY: monitoring-check
monitoring-check: ## Check the dashboard against Grafana's schema, the alerts with promtool (check + unit tests), runbook rows and the chart's copies.
	cd hack/monitoring && $(GO) test -count=1 -v ./... 2>&1 | grep -E '^(=== RUN|PASS|FAIL|ok)|^ *--- |_test.go:[0-9]+:|SUCCESS'

.PHONY: monitoring-e2e
monitoring-e2e: build envtest ## A real Prometheus scrapes the demo; every dashboard query and alert is evaluated (needs Debian's prometheus).
	bash hack/monitoring-e2e.sh

.PHONY: chart-check
chart-check: ## Lint, render and server-dry-run the Helm chart and config/default; test the GitOps health checks.
	@bash hack/chart-check.sh

.PHONY: verify
verify: generate manifests ## Fail when generated files or formatting are stale; run go vet.
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts | grep '^??')" || { echo "untracked generated files: commit them"; git status --porcelain -- api config charts; exit 1; }
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	GOEXPERIMENT=jsonv2 $(GO) vet ./curator/feed/ # the jsontext parser comparison builds only with JSON v2
	cd hack/gitops-check && $(GO) vet ./...
	cd hack/monitoring && $(GO) vet ./...
	cd hack/image && $(GO) vet ./...

##@ Build

IMAGE_DIR  ?= $(BIN)/image
IMAGE_ARCH ?= amd64
IMAGE_BIN  := $(BIN)/misp-trust-operator-linux-$(IMAGE_ARCH)

.PHONY: image
image: ## Build the release image IMG without a container engine (hack/image): OCI layout bin/image/oci, `docker load` tarball bin/image/image.tar; then test it.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(IMAGE_BIN) .
	cd hack/image && $(GO) run . -binary $(IMAGE_BIN) -arch $(IMAGE_ARCH) -version $(VERSION) \
	  -revision "$$(git rev-parse HEAD 2>/dev/null)" -created "$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}" \
	  -oci $(IMAGE_DIR)/oci -tarball $(IMAGE_DIR)/image.tar -tag $(IMG)
	img="$(IMG)"; cd hack/image && IMAGE_BINARY=$(IMAGE_BIN) IMAGE_LAYOUT=$(IMAGE_DIR)/oci IMAGE_TAG="$${img##*:}" IMAGE_VERSION=$(VERSION) \
	  $(GO) test -count=1 -v ./... 2>&1 | grep -E '^(=== RUN|PASS|FAIL|ok)|^ *--- |_test.go:[0-9]+:'

.PHONY: docker-build
docker-build: ## Build the image IMG with Docker from the Dockerfile, equivalent to `make image` (needs a Docker engine with BuildKit; none runs on our dev machines).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	@mv $(BIN)/controller-gen $(CONTROLLER_GEN)
