# The same two images built from source, for a CI with network access
# (this repository's CI cannot pull images, so it uses runner.Dockerfile
# and gateway.Dockerfile around host-built binaries instead):
#
#   docker build -f deploy/docker/multistage.Dockerfile --target runner  -t leash-runner .
#   docker build -f deploy/docker/multistage.Dockerfile --target gateway -t leash .
#
# Run from the repository root (the context is the module).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X github.com/leashpki/leash/cli.version=${VERSION}" -o /out/leash ./cmd/leash \
 && go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/leash-runner ./cmd/leash-runner \
 && mkdir -p /out/state

FROM scratch AS runner
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY deploy/docker/passwd deploy/docker/group /etc/
COPY --from=build /out/leash-runner /usr/local/bin/leash-runner
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/leash-runner/
ENV LEASH_STATE_DIR=/var/lib/leash-runner
USER 65532:65532
VOLUME ["/var/lib/leash-runner"]
ENTRYPOINT ["/usr/local/bin/leash-runner"]

FROM scratch AS gateway
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY deploy/docker/passwd deploy/docker/group /etc/
COPY --from=build /out/leash /usr/local/bin/leash
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/leash/
ENV LEASH_DATA_DIR=/var/lib/leash \
    LEASH_CA_PASSWORD_FILE=/run/secrets/leash-ca-password \
    LEASH_MODE=mtls \
    LEASH_LISTEN=:8443 \
    LEASH_ENROLL_LISTEN=:8444
USER 65532:65532
VOLUME ["/var/lib/leash"]
EXPOSE 8443 8444 9443
ENTRYPOINT ["/usr/local/bin/leash"]
CMD ["gateway", "serve"]
