# leash (the gateway and the CLI) on scratch. "Minimal base": the binary is
# static (CGO_ENABLED=0; SQLite is modernc's pure-Go driver), so it needs
# nothing but the CA bundle (ACME, PostgreSQL over TLS) and a passwd entry.
# Built like runner.Dockerfile from a host-built binary:
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/leash
# context: leash  ca-certificates.crt  passwd  group  state/ (empty)
#
# The data dir (/var/lib/leash) holds the CA (ca/) and, without
# LEASH_DATABASE_URL, the SQLite database; mount a volume there, owned by
# uid 65532. The CA password file must be mode 0600/0400: mount it as a
# secret at /run/secrets/leash-ca-password (the default below).
#
# No HEALTHCHECK: there is no shell or curl in the image, and /v1/health
# needs a client certificate in mtls mode. Probe from outside: a TCP check
# on 8443/8444, or GET https://gateway:8444/v1/enroll/crl (no client
# certificate needed); see deploy/k8s/gateway.yaml.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY passwd group /etc/
COPY leash /usr/local/bin/leash
COPY --chown=65532:65532 state/ /var/lib/leash/
ENV LEASH_DATA_DIR=/var/lib/leash \
    LEASH_CA_PASSWORD_FILE=/run/secrets/leash-ca-password \
    LEASH_MODE=mtls \
    LEASH_LISTEN=:8443 \
    LEASH_ENROLL_LISTEN=:8444
USER 65532:65532
VOLUME ["/var/lib/leash"]
# 8443 API (mTLS), 8444 enrollment (server TLS only), 9443 optional
# --metrics-listen.
EXPOSE 8443 8444 9443
ENTRYPOINT ["/usr/local/bin/leash"]
CMD ["gateway", "serve"]
