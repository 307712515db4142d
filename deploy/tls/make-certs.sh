#!/usr/bin/env bash
# Makes what a secure DASH cluster needs, for development and tests, with openssl:
#   DIR/ca.pem, ca.key              a cluster CA (EC P-256, 10 years);
#   DIR/<name>.pem, <name>.key      a certificate per process kind or process, issued by the CA,
#                                   common name "dash-<kind>[/<id>]" (what makes a cluster member,
#                                   common/security.h), valid for localhost and 127.0.0.1 plus
#                                   $DASH_TLS_SANS (e.g. "DNS:n1,DNS:router");
#   DIR/auth-keys.json              a JWT signing key (32 random bytes) for --auth_key_file and
#                                   `dashctl token mint`.
# Usage: make-certs.sh DIR [NAME...]   NAME: controlplane, router, node or node/<id>
#        (default: controlplane router node). Whatever already exists in DIR is kept, so it
#        can be run again to add certificates; nothing is ever printed of a key.
# Production clusters use their own PKI; keep ca.key off the servers.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(controlplane router node)
mkdir -p "$dir"
umask 077

if [[ ! -s $dir/ca.pem ]]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=dash-cluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem"
fi

sans="DNS:localhost,IP:127.0.0.1${DASH_TLS_SANS:+,$DASH_TLS_SANS}"
for name in "${names[@]}"; do
  case ${name%%/*} in
    controlplane | router | node) ;;
    *) echo "make-certs.sh: $name: not controlplane, router, node or node/<id>" >&2; exit 2 ;;
  esac
  file=$dir/${name//\//-}
  [[ -s $file.pem ]] && continue
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$file.key" 2>/dev/null
  openssl req -new -key "$file.key" -subj "/CN=dash-${name//\//\\/}" -out "$file.csr"
  openssl x509 -req -in "$file.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -sha256 -out "$file.pem" -extfile <(printf '%s\n' \
      "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans") 2>/dev/null
  rm -f "$file.csr"
done
chmod 644 "$dir"/*.pem

if [[ ! -s $dir/auth-keys.json ]]; then
  printf '{"keys": [{"kid": "%s", "secret": "%s"}]}\n' "k$(date +%Y%m%d)" \
    "$(openssl rand -base64 32)" >"$dir/auth-keys.json"
fi
