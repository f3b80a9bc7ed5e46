#!/bin/sh
# Build the leash and leash-runner images without pulling anything: the
# static binaries are compiled on this host and copied into FROM scratch
# images. Usage, from anywhere in the repository:
#   deploy/docker/build.sh [TAG]        # default TAG: dev
# Produces leash:TAG and leash-runner:TAG. DOCKER_BUILDKIT=0 keeps to the
# legacy builder, which needs no buildx plugin.
set -eu
tag=${1:-dev}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for img in gateway:leash:./cmd/leash:github.com/leashpki/leash/cli.version runner:leash-runner:./cmd/leash-runner:main.version; do
	kind=${img%%:*}; rest=${img#*:}
	bin=${rest%%:*}; rest=${rest#*:}
	pkg=${rest%%:*}; var=${rest#*:}
	dir=$ctx/$kind
	mkdir -p "$dir/state"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $var=$version" -o "$dir/$bin" "$pkg")
	cp /etc/ssl/certs/ca-certificates.crt "$here/passwd" "$here/group" "$dir/"
	DOCKER_BUILDKIT=0 docker build -q -f "$here/$kind.Dockerfile" -t "$bin:$tag" "$dir"
	docker image inspect -f "$bin:$tag {{.Size}} bytes" "$bin:$tag"
done
