#!/bin/sh
# purge also removes the state (private key, subnet, services) and the configuration.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
  rm -rf /var/lib/weft /etc/weft
fi
