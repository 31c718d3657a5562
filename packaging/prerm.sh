#!/bin/sh
# Stop the agent before its binary goes (on removal, not on upgrade).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop weft.service >/dev/null 2>&1 || true
  systemctl disable weft.service >/dev/null 2>&1 || true
fi
