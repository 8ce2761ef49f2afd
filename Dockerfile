# syntax=docker/dockerfile:1
# shopnow: multi-stage build. Dependencies are compiled in their own layer (cargo-chef), so a
# change to the code rebuilds only the workspace's crates. The runtime image is distroless: no
# shell, no package manager, a non-root user, and the one binary.
#   docker build .                       the API server (the default target)
#   docker build --target stalecheck .   the stale-read checker (docker-compose.yml's profile)
# Where the official base images cannot be pulled, name local ones (scripts/containers makes
# them from Debian's packages):
#   --build-arg RUST_IMAGE=localhost/rust:1.95-bookworm
#   --build-arg RUNTIME_IMAGE=localhost/distroless-cc:debian12

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS chef
# The shipped binaries carry no debug info (84 MB with it, under 20 without): backtraces still
# name functions. Set for the dependencies' layer too, so both build with one profile.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN cargo install cargo-chef --locked --version 0.1.73
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# Shown by /livez ("build"): which build a replica runs, e.g. during a rolling update.
ARG SHOPNOW_BUILD=local
ENV SHOPNOW_BUILD=${SHOPNOW_BUILD}
RUN cargo build --release --locked -p shopnow

FROM builder AS stalecheck-builder
RUN cargo build --release --locked -p stalecheck

# The checker: a client of the API over HTTP, in an image of its own.
FROM ${RUNTIME_IMAGE} AS stalecheck
COPY --from=stalecheck-builder /src/target/release/stalecheck /usr/local/bin/stalecheck
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stalecheck"]

FROM ${RUNTIME_IMAGE}
COPY --from=builder /src/target/release/shopnow /usr/local/bin/shopnow
# Configuration comes from the environment at run time (README, "Configuration"); nothing
# secret is baked in. These two only make the image's defaults explicit.
ENV SHOPNOW_LISTEN=0.0.0.0:8080 \
    SHOPNOW_LOG_FORMAT=json
# 65532 is the nonroot user of the distroless image.
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/shopnow", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/shopnow"]
CMD ["serve"]
