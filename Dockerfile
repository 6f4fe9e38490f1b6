# Skein broker image: one static binary on an empty (scratch) base, run as a
# non-root user (65532), data in the /data volume.
#
#   docker build -t skein:local .
#   docker build --build-arg VERSION=v1.2.3 -t skein:v1.2.3 .
#
# This needs the golang image from a registry. Without a registry (nothing can be
# pulled), build the binary on the host and use deploy/docker/Dockerfile.prebuilt,
# which only needs `scratch`:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o deploy/docker/skein ./cmd/skein
#   docker build -f deploy/docker/Dockerfile.prebuilt -t skein:local deploy/docker
#
# Both give the same image layout:
#   /skein   the binary (ENTRYPOINT; `serve` by default, or any other verb)
#   /data    data directory (bbolt files, Raft log and snapshots), a volume owned
#            by 65532:65532
# There is no shell, so no HEALTHCHECK here: the compose file and the Helm chart
# probe the broker with the binary itself (`/skein ctl nodes`) or over HTTP
# (/healthz, /readyz on port 18083).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/skein ./cmd/skein \
    && mkdir -p /out/rootfs/data

FROM scratch
# An empty data directory owned by the runtime user: a named volume mounted on
# /data starts as a copy of it, so the broker can write there without root.
COPY --from=build --chown=65532:65532 /out/rootfs/ /
COPY --from=build /out/skein /skein
USER 65532:65532
WORKDIR /data
# 1883 MQTT, 8883 MQTT over TLS, 8083 WebSocket (/mqtt), 8084 WebSocket over TLS,
# 18083 HTTP (/healthz, /readyz, /metrics, /api/v1), 7946 gossip (TCP and UDP),
# 7947 peer gRPC and Raft.
EXPOSE 1883 8883 8083 8084 18083 7946/tcp 7946/udp 7947
VOLUME ["/data"]
ENTRYPOINT ["/skein"]
CMD ["serve", "--data-dir", "/data"]
