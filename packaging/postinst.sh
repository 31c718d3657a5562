#!/bin/sh
# Make systemd see the unit; the service is not enabled or started (it needs a gossip key).
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
