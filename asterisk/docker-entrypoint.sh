#!/bin/sh
# Writes the files that must never be committed from the container's environment, then starts
# Asterisk:
#   AMI_USER, AMI_SECRET, AMI_PERMIT   → /etc/asterisk/manager_users.conf (the voice worker's login)
#   BN_IVR, BN_MELDKAMER_DIAL, BN_TIPLINE_DID, BN_RING_SECONDS
#                                      → /etc/asterisk/globals_local.conf (overrides globals.conf)
#   /etc/asterisk/pjsip_local.conf     the operator trunk: mount it (see pjsip.conf)
set -eu

if [ -n "${AMI_SECRET:-}" ]; then
    cat > /etc/asterisk/manager_users.conf <<CONF
[${AMI_USER:-burgernet}]
secret = ${AMI_SECRET}
deny = 0.0.0.0/0.0.0.0
permit = ${AMI_PERMIT:-127.0.0.1/255.255.255.255}
read = all
write = all
CONF
    chmod 640 /etc/asterisk/manager_users.conf
fi

: > /etc/asterisk/globals_local.conf
for name in BN_IVR BN_MELDKAMER_DIAL BN_TIPLINE_DID BN_RING_SECONDS; do
    eval "value=\${$name:-}"
    [ -n "$value" ] && echo "$name = $value" >> /etc/asterisk/globals_local.conf
done
chown asterisk:asterisk /etc/asterisk/*.conf

exec "$@"
