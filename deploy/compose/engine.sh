# Sourced by the compose scripts: makes `docker` and `docker-compose` reach a container engine.
# A Docker engine is used when one answers. Otherwise Podman serves the Docker API on a socket
# under $DASH_COMPOSE_STATE (runc, cgroupfs, file events: what works on hosts without systemd),
# and DOCKER_HOST points at it. Installs podman, runc and docker-compose from Debian if missing.
# Sets: DOCKER_HOST (with Podman), DASH_ENGINE=docker|podman, and defines docker() for Podman.
DASH_COMPOSE_STATE=${DASH_COMPOSE_STATE:-/var/tmp/dash-compose}
mkdir -p "$DASH_COMPOSE_STATE"

dash_apt_install() { # dash_apt_install PACKAGE...: installs the missing ones
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  echo "== installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/dev/null
}

dash_apt_install curl ca-certificates
# A Docker engine: one whose API answers (the docker command alone may be Podman's emulation).
docker_api=${DOCKER_HOST:-unix:///var/run/docker.sock}
if [[ $docker_api == unix://* && $docker_api != unix://$DASH_COMPOSE_STATE/podman.sock ]] &&
  curl -sf --unix-socket "${docker_api#unix://}" http://d/_ping >/dev/null 2>&1; then
  DASH_ENGINE=docker
  dash_apt_install docker-compose
else
  DASH_ENGINE=podman
  # netavark with aardvark-dns: the compose network with container names in DNS; iptables: its
  # port publishing; catatonit: init for containers; podman-docker: the `docker` command, which
  # docker-compose runs for `run` and `exec`.
  dash_apt_install podman podman-docker runc netavark aardvark-dns iptables catatonit docker-compose \
    debootstrap
  printf '%s\n' '[containers]' 'default_ulimits = []' '[engine]' 'cgroup_manager = "cgroupfs"' \
    'runtime = "runc"' 'events_logger = "file"' >"$DASH_COMPOSE_STATE/containers.conf"
  export CONTAINERS_CONF=$DASH_COMPOSE_STATE/containers.conf
  export DOCKER_HOST=unix://$DASH_COMPOSE_STATE/podman.sock
  # Builds through the Docker API (Podman's), as on a machine with no docker CLI.
  export COMPOSE_DOCKER_CLI_BUILD=0
  docker() { podman "$@"; }
  if ! curl -sf --unix-socket "$DASH_COMPOSE_STATE/podman.sock" http://d/_ping >/dev/null 2>&1; then
    rm -f "$DASH_COMPOSE_STATE/podman.sock"
    nohup podman system service --time=0 "$DOCKER_HOST" >>"$DASH_COMPOSE_STATE/podman.log" 2>&1 &
    echo $! >"$DASH_COMPOSE_STATE/podman.pid"
    for _ in $(seq 100); do
      curl -sf --unix-socket "$DASH_COMPOSE_STATE/podman.sock" http://d/_ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    echo "== Podman serves the Docker API at $DOCKER_HOST (pid $(cat "$DASH_COMPOSE_STATE/podman.pid"))"
  fi
fi
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-dash}

# dash_base_image: prints the name of a debian:bookworm-slim image the engine has. Pulled when a
# registry answers; otherwise built once from Debian's archive with debootstrap (minbase, the
# same package set as the official slim image) and kept as localhost/debian:bookworm-slim.
dash_base_image() {
  local official=docker.io/library/debian:bookworm-slim local=localhost/debian:bookworm-slim
  if docker image inspect "$official" >/dev/null 2>&1; then echo "$official"; return; fi
  if docker image inspect "$local" >/dev/null 2>&1; then echo "$local"; return; fi
  if timeout 60 docker pull -q "$official" >/dev/null 2>&1; then echo "$official"; return; fi
  local mirror rootfs=$DASH_COMPOSE_STATE/rootfs
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  [[ -n $mirror ]] || mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "== no registry answers: building $local with debootstrap from $mirror (once)" >&2
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$DASH_COMPOSE_STATE/debootstrap.log" 2>&1 ||
    { tail -20 "$DASH_COMPOSE_STATE/debootstrap.log" >&2; return 1; }
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | docker import - "$local" >/dev/null
  rm -rf "$rootfs"
  echo "$local"
}

DASH_COMPOSE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dash_compose() { docker-compose -f "$DASH_COMPOSE_DIR/docker-compose.yml" "$@"; }
# dash_exec SERVICE COMMAND...: runs COMMAND in the service's running container. Through the
# engine's own CLI: docker-compose's exec over Podman's API fails where no docker CLI is installed.
dash_exec() {
  local id
  id=$(dash_compose ps -q "$1") && [[ -n $id ]] || return 1
  shift
  if [[ $DASH_ENGINE == podman ]]; then podman exec "$id" "$@"; else command docker exec "$id" "$@"; fi
}

# dash_build_images source|prebuilt: builds localhost/dash:dev and localhost/dash-prometheus:dev.
# prebuilt takes the four binaries from build/ (built here first if missing), stripped.
dash_build_images() {
  local root
  root=$(cd "$DASH_COMPOSE_DIR/../.." && pwd)
  DASH_BASE_IMAGE=$(dash_base_image)
  export DASH_BASE_IMAGE DASH_TARGET=dash
  if [[ $1 == prebuilt ]]; then
    DASH_TARGET=dash-prebuilt
    local bins=(controlplane/dash-controlplane node/dash-node router/dash-router dashctl/dashctl) b
    (cd "$root" && scripts/build.sh dash-controlplane dash-node dash-router dashctl >/dev/null)
    rm -rf "$DASH_COMPOSE_DIR/run/bin" && mkdir -p "$DASH_COMPOSE_DIR/run/bin"
    for b in "${bins[@]}"; do strip -o "$DASH_COMPOSE_DIR/run/bin/${b#*/}" "$root/build/$b"; done
  fi
  echo "== building the images (binaries: $1, base: $DASH_BASE_IMAGE)"
  dash_compose build -q
}

# dash_fetch_admin DIR: copies the cluster's CA certificate and admin token to DIR (mode 600).
dash_fetch_admin() {
  mkdir -p "$1"
  (umask 077 && dash_compose run --rm --no-deps -T --entrypoint cat ctl /etc/dash/admin/token \
    >"$1/token" 2>/dev/null)
  dash_compose run --rm --no-deps -T --entrypoint cat ctl /etc/dash/admin/ca.pem \
    >"$1/ca.pem" 2>/dev/null
  [[ -s $1/token && -s $1/ca.pem ]]
}

# dash_wait_serving SECONDS: waits until the router is SERVING (every shard led by a healthy
# node), asked inside its container.
dash_wait_serving() {
  local deadline=$((SECONDS + $1))
  until dash_exec router dashctl health --tls-ca=/etc/dash/tls/ca.pem localhost:7100 \
    >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { dash_compose ps; dash_compose logs --tail=20; return 1; }
    sleep 0.5
  done
}
