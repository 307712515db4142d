#!/bin/sh
# The compose cluster's one-shot "init" service: makes what a secure cluster needs, once, into
# three volumes so that each container sees only its part:
#   /etc/dash/pki    the CA and its key (this service alone mounts it);
#   /etc/dash/tls    the CA's certificate, each server's certificate and key, valid for its
#                    service name, and the token signing key (the servers mount it read-only);
#   /etc/dash/admin  the CA's certificate and an admin token (dashctl's config directory, for
#                    the "ctl" service and for deploy/compose/up.sh to hand to the host).
# Run again, it keeps what exists, so certificates and tokens survive `up` after `down`.
set -eu
pki=/etc/dash/pki
DASH_TLS_SANS="DNS:controlplane,DNS:router,DNS:n1,DNS:n2,DNS:n3${DASH_TLS_EXTRA_SANS:+,$DASH_TLS_EXTRA_SANS}" \
  /usr/local/lib/dash/make-certs.sh "$pki" controlplane router node
umask 077
for f in ca.pem controlplane.pem controlplane.key router.pem router.key node.pem node.key \
  auth-keys.json; do
  [ -s "/etc/dash/tls/$f" ] || cp "$pki/$f" "/etc/dash/tls/$f"
done
chmod 644 /etc/dash/tls/*.pem
cp "$pki/ca.pem" /etc/dash/admin/ca.pem
chmod 644 /etc/dash/admin/ca.pem
if [ ! -s /etc/dash/admin/token ]; then
  dashctl token mint --key-file="$pki/auth-keys.json" --tenant='*' --role=read --role=write \
    --role=admin --ttl="${DASH_ADMIN_TOKEN_TTL:-720h}" --subject=compose-admin \
    >/etc/dash/admin/token.new
  mv /etc/dash/admin/token.new /etc/dash/admin/token
fi
echo "init: certificates in /etc/dash/tls, an admin token in /etc/dash/admin"
