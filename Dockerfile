# syntax=docker/dockerfile:1
# Release image of the TAOLIE host agent (docs/container.md): built on Debian 12, run on a
# small debian:12-slim with only the agent's runtime libraries, iptables and CA certificates.
#
#   docker build -t taolie/host-agent:0.1.0 .
#   docker compose -f deploy/docker-compose.yml up -d
#
# The agent runs as root in the container: it manages the firewall (CAP_NET_ADMIN, iptables)
# and talks to the host's Docker socket, which is root on the host anyway (docs/container.md).
# CI builds deploy/container/Dockerfile.ci instead (no network for this file's FROM there).

FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
# The build dependencies of scripts/install-deps.sh (BUILD_PKGS), without the test frameworks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config libcurl4-openssl-dev libpq-dev nlohmann-json3-dev \
      libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libcpp-httplib-dev \
      libsystemd-dev prometheus-cpp-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAOLIE_BUILD_TESTS=OFF \
 && cmake --build /build --target taolie-host-agent \
 && strip --strip-debug -o /taolie-host-agent /build/taolie-host-agent

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# The shared libraries the binary links (tests/container/container_test.sh checks this list
# against `ldd` of the CI build), iptables for the rental firewall, CA certificates for the
# platform's TLS. No PostgreSQL server: the compose file runs the database as its own service.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates iptables libcurl4 libpq5 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
      libcpp-httplib0.11 libprometheus-cpp-core1.0 libsystemd0 libssl3 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/taolie-host-agent /var/lib/taolie-host-agent /host
COPY --from=build /taolie-host-agent /usr/bin/taolie-host-agent
COPY deploy/container/entrypoint.sh /usr/local/bin/taolie-entrypoint
COPY deploy/container/config.yaml /etc/taolie-host-agent/config.yaml
LABEL org.opencontainers.image.title="taolie-host-agent" \
      org.opencontainers.image.description="TAOLIE GPU host agent"
VOLUME ["/var/lib/taolie-host-agent"]
# Liveness as the agent judges it: GET /healthz on api.listen:api.port, 0 only on 200.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["taolie-host-agent", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/taolie-entrypoint"]
CMD ["run", "--config", "/etc/taolie-host-agent/config.yaml"]
