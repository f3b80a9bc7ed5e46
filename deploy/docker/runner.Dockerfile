# leash-runner on scratch: one static binary, the CA bundle, a non-root
# user and a state volume. Nothing is pulled and nothing is compiled here:
# build.sh (or the deploy package's test) builds the binary on the host with
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/leash-runner
# and stages this context:
#   leash-runner  ca-certificates.crt  passwd  group  state/ (empty)
# multistage.Dockerfile is the same image built from source for a CI that
# can pull golang:1.26.
#
# No HEALTHCHECK: scratch has no shell and no curl; the runner only dials
# out, so its health is the gateway's view of it (leash runner list, the
# leash_gateway_runners metric). Exit code 3 means "needs a new token".
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY passwd group /etc/
COPY leash-runner /usr/local/bin/leash-runner
# An empty directory owned by the runner's user: a named volume mounted
# here starts with this ownership, so the identity (mode 0600) is writable.
COPY --chown=65532:65532 state/ /var/lib/leash-runner/
ENV LEASH_STATE_DIR=/var/lib/leash-runner
USER 65532:65532
VOLUME ["/var/lib/leash-runner"]
ENTRYPOINT ["/usr/local/bin/leash-runner"]
