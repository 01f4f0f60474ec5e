# syntax=docker/dockerfile:1
# One static binary for both components (`controller`, `curator`) on distroless.
# Build: make docker-build IMG=<registry>/misp-trust-operator:<tag>
# (needs a Docker engine with BuildKit; our development machines have none).

# The builder runs natively and cross-compiles (docker buildx --platform linux/amd64,linux/arm64).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
# Static (no cgo), reproducible paths (-trimpath), version stamped into main.version.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/misp-trust-operator .

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title="misp-trust-operator" \
      org.opencontainers.image.description="Curates MISP events by the trust placed in their creator organisation" \
      org.opencontainers.image.source="https://github.com/misptrust/misp-trust-operator"
COPY --from=build /out/misp-trust-operator /misp-trust-operator
# distroless "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/misp-trust-operator"]
