#!/usr/bin/env bash
# make demo: three hosts in network namespaces, each running `weft agent` on the embedded
# defaults: `weft init` on h1, which becomes the CA host; h2 and h3 enrolled with a join
# token each (`weft token create`, `weft agent --join-token`); encrypted traffic between all pairs; a service
# registered on one host found from another by DNS and `weft resolve`, and reached through
# the overlay; then a container on h1 and one on h3 (weft-cni, the CNI plugin), the second's
# service found by DNS from the first and reached through the overlay; last, h1's web console
# (ui.listen, 127.0.0.1:9190 in h1's namespace), forwarded to this machine's loopback when socat
# is installed, kept open until Enter when run from a terminal. Everything it creates carries a
# random id and is removed on exit (and Ctrl-C).
set -euo pipefail

BIN=${1:-bin/weft}
BIN=$(readlink -f "$BIN")
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, TUN devices): sudo make demo" >&2; exit 1; }
for t in ip ping dig; do
  command -v "$t" >/dev/null || { echo "missing $t: run 'bash .ci/run-deps' first" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "no weft binary at $BIN: run 'make build'" >&2; exit 1; }
CNI=$(dirname "$BIN")/weft-cni
[ -x "$CNI" ] || { echo "no weft-cni binary at $CNI: run 'make build'" >&2; exit 1; }

ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/weft-demo.XXXXXX)
NS=(); PIDS=()
HOSTS=(h1 h2 h3)

if [ -t 1 ]; then B=$'\033[1m'; N=$'\033[0m'; else B=; N=; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
ns() { echo "weft-$ID-$1"; }
in_ns() { local h=$1; shift; ip netns exec "$(ns "$h")" "$@"; }
weft() { local h=$1; shift; "$BIN" --socket "$WORK/$h.sock" "$@"; }

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for n in "${NS[@]}"; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$n" 2>/dev/null
  done
  rm -rf "$WORK"
  echo "cleaned up (namespaces weft-$ID-*, $WORK)"
}
trap cleanup EXIT
trap 'echo; echo interrupted; exit 130' INT TERM

step "three hosts in network namespaces on one switch (underlay 192.168.150.0/24)"
ip netns add "$(ns sw)"; NS+=("$(ns sw)")
in_ns sw ip link add br0 type bridge
in_ns sw ip link set br0 up
for i in 0 1 2; do
  h=${HOSTS[$i]}; n=$(ns "$h")
  ip netns add "$n"; NS+=("$n")
  in_ns "$h" ip link set lo up
  in_ns sw ip link add "p$i" type veth peer name eth0 netns "$n"
  in_ns sw ip link set "p$i" master br0 up
  in_ns "$h" ip addr add "192.168.150.$((i+1))/24" dev eth0
  in_ns "$h" ip link set eth0 up
  echo "  $h: eth0 192.168.150.$((i+1))"
done

step "weft init on h1: the cluster CA and the gossip key, in h1's state directory"
"$BIN" init --state-dir "$WORK/h1" --name demo | sed 's/^/  /'

# start_agent HOST ARGS...: the agent of HOST, on the embedded defaults, and wait for its API.
start_agent() {
  local h=$1; shift
  in_ns "$h" "$BIN" agent --name "$h" --state-dir "$WORK/$h" --socket "$WORK/$h.sock" \
    --cni --cni-subnet-env "$WORK/$h.subnet.env" "$@" >"$WORK/$h.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do weft "$h" status >/dev/null 2>&1 && break; sleep 0.1; done
  weft "$h" status >/dev/null || { echo "agent $h did not start:"; cat "$WORK/$h.log"; exit 1; }
}

step "h1's agent: the CA host (it issues its own certificate and serves enrollment on :7947)"
start_agent h1
echo "  h1: $(weft h1 status --json | grep -o '"subnet": "[^"]*"')"

step "h2 and h3 join with a token each: weft token create (on h1), weft agent --join-token T --retry-join 192.168.150.1"
for h in h2 h3; do
  TOKEN=$(weft h1 token create 2>/dev/null)
  echo "  $h: token ${TOKEN:0:10}…${TOKEN: -8}"
  start_agent "$h" --join-token "$TOKEN" --retry-join 192.168.150.1 --retry-interval 1s
done
echo "  agents up; logs in $WORK/*.log"
for _ in $(seq 150); do
  [ "$(weft h1 members --json | grep -c '"status": "alive"')" = 3 ] && break; sleep 0.1
done

step "weft token list (on h1): the tokens spent and the /24 each host was given"
weft h1 token list | sed 's/^/  /'

step "weft members (on h1)"
weft h1 members

declare -A ADDR
for h in "${HOSTS[@]}"; do ADDR[$h]=$(weft "$h" status --json | sed -n 's/.*"address": "\(.*\)".*/\1/p'); done

step "encrypted traffic between all pairs (ping over the overlay)"
ok=0; total=0
for a in "${HOSTS[@]}"; do for b in "${HOSTS[@]}"; do
  [ "$a" = "$b" ] && continue
  total=$((total+1))
  if in_ns "$a" ping -c 2 -i 0.2 -W 2 "${ADDR[$b]}" >/dev/null; then
    ok=$((ok+1)); echo "  $a → $b (${ADDR[$b]}): ok"
  else
    echo "  $a → $b (${ADDR[$b]}): FAILED"
  fi
done; done

TPUT="(iperf3 not installed)"
if command -v iperf3 >/dev/null; then
  step "TCP throughput h1 → h3 through the overlay (iperf3, 3 s)"
  in_ns h3 iperf3 -s -1 -B "${ADDR[h3]}" >/dev/null 2>&1 &
  sleep 0.5
  TPUT=$(in_ns h1 iperf3 -c "${ADDR[h3]}" -t 3 -f g 2>&1 | awk '/receiver/ {print $7, $8}')
  echo "  $TPUT"
fi

step "weft peers (on h1): endpoints, handshakes, bytes"
weft h1 peers

step "a service on h2: an HTTP server on ${ADDR[h2]}:8080, registered with an http health check"
mkdir -p "$WORK/www"; echo "hello from h2 through weft" >"$WORK/www/index.html"
if command -v python3 >/dev/null; then
  in_ns h2 python3 -m http.server 8080 --bind "${ADDR[h2]}" --directory "$WORK/www" >/dev/null 2>&1 &
  PIDS+=($!)
else
  echo "  (python3 not installed: registering without a server; the request below will fail)"
fi
weft h2 register web --port 8080 --check http --target "http://${ADDR[h2]}:8080/" --interval 1s --passes-before-passing 1
for _ in $(seq 100); do
  [ -n "$(in_ns h3 dig @127.0.0.1 +short web.service.weft A)" ] && break; sleep 0.2
done

step "found from h3 by DNS: dig @127.0.0.1 web.service.weft (A and SRV)"
in_ns h3 dig @127.0.0.1 +noall +answer web.service.weft A
in_ns h3 dig @127.0.0.1 +noall +answer _web._tcp.service.weft SRV

step "and by client-side balancing: weft resolve web (on h3)"
TARGET=$(weft h3 resolve web)
echo "  $TARGET"

step "a request from h3 to the service, through the encrypted overlay"
BODY=$(in_ns h3 bash -c "exec 3<>/dev/tcp/${TARGET%:*}/${TARGET#*:}; printf 'GET / HTTP/1.0\r\nHost: web\r\n\r\n' >&3; cat <&3" 2>/dev/null | tail -1 || true)
echo "  $BODY"

# cni HOST CMD CONTAINER: run the CNI plugin in HOST for container CONTAINER, as a runtime would.
cni() {
  local h=$1 cmd=$2 c=$3
  printf '{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","socket":"%s","dataDir":"%s"}' "$WORK/$h.sock" "$WORK/$h-cni" |
    in_ns "$h" env CNI_COMMAND="$cmd" CNI_CONTAINERID="$c" CNI_NETNS="/run/netns/$(ns "$c")" CNI_IFNAME=eth0 CNI_PATH="$(dirname "$CNI")" "$CNI"
}
step "containers: c1 on h1, c3 on h3, each given an address of its host's /24 by weft-cni (CNI ADD)"
declare -A CIP
for pair in h1:c1 h3:c3; do
  h=${pair%%:*}; c=${pair#*:}
  ip netns add "$(ns "$c")"; NS+=("$(ns "$c")")
  in_ns "$c" ip link set lo up
  CIP[$c]=$(cni "$h" ADD "$c" | grep -o '"address": *"[0-9.]*' | grep -o '[0-9.]*$')
  echo "  $c on $h: eth0 ${CIP[$c]} (host subnet $(grep FLANNEL_SUBNET "$WORK/$h.subnet.env" | cut -d= -f2), mtu $(in_ns "$c" cat /sys/class/net/eth0/mtu))"
done
echo "  h1's subnet.env:"; sed 's/^/    /' "$WORK/h1.subnet.env"

step "c3 serves HTTP on ${CIP[c3]}:8081, registered on h3: weft register db --port 8081 --address ${CIP[c3]}"
echo "hello from container c3 through weft" >"$WORK/www/c3.html"
if command -v python3 >/dev/null; then
  in_ns c3 python3 -m http.server 8081 --bind "${CIP[c3]}" --directory "$WORK/www" >/dev/null 2>&1 &
  PIDS+=($!)
fi
weft h3 register db --port 8081 --address "${CIP[c3]}"
for _ in $(seq 100); do
  [ -n "$(in_ns c1 dig @"${ADDR[h1]}" +short db.service.weft A)" ] && break; sleep 0.2
done
step "from c1: dig @${ADDR[h1]} db.service.weft (h1's DNS on its overlay address), then a request to c3"
CDNS=$(in_ns c1 dig @"${ADDR[h1]}" +short db.service.weft A)
echo "  db.service.weft → $CDNS"
CBODY=
for _ in $(seq 30); do # the server may still be starting
  CBODY=$(in_ns c1 bash -c "exec 3<>/dev/tcp/$CDNS/8081; printf 'GET /c3.html HTTP/1.0\r\nHost: db\r\n\r\n' >&3; cat <&3" 2>/dev/null | tail -1 || true)
  [ -n "$CBODY" ] && break; sleep 0.2
done
echo "  $CBODY"
cni h1 DEL c1 && cni h3 DEL c3 && echo "  CNI DEL: both containers' addresses released"

step "the web console of h1 (ui.listen: 127.0.0.1:9190 inside h1's namespace)"
UI=$(weft h1 ui)
UIMEMBERS=$(in_ns h1 curl -s "${UI}api/cluster" | grep -o '"status":"alive"' | wc -l)
echo "  weft ui (on h1): $UI — its /api/cluster shows $UIMEMBERS members alive"
UIFWD=""
if command -v socat >/dev/null; then
  # h1's namespace is reachable only from inside: a loopback forward on this machine into it.
  for port in $(seq 9190 9199); do
    ss -Hltn "sport = :$port" | grep -q . && continue
    socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" \
      "EXEC:ip netns exec $(ns h1) socat STDIO TCP\:127.0.0.1\:9190" 2>/dev/null &
    PIDS+=($!); UIFWD="http://127.0.0.1:$port/"; break
  done
fi
if [ -n "$UIFWD" ]; then
  echo "  open $UIFWD in a browser on this machine (a socat forward into h1's namespace):"
  echo "  ${UIFWD}map (links, live throughput), ${UIFWD}host/h1, ${UIFWD}services, ${UIFWD}policy"
  echo "  from another machine: ssh -L 9190:127.0.0.1:${UIFWD##*:} THIS-HOST, then http://127.0.0.1:9190/"
else
  echo "  h1's namespace is reachable only from inside it; install socat for a forward to this machine, or ask it:"
  echo "  sudo ip netns exec $(ns h1) curl -s ${UI}api/cluster"
fi

step "summary"
echo "  hosts: 3, members alive on h1: $(weft h1 members --json | grep -c '"status": "alive"')"
echo "  overlay pings: $ok of $total pairs"
echo "  throughput h1 → h3: $TPUT"
echo "  service web: $(in_ns h3 dig @127.0.0.1 +short web.service.weft A | tr '\n' ' ')via DNS, resolve → $TARGET"
echo "  HTTP through the overlay: ${BODY:-failed}"
echo "  containers: c1 ${CIP[c1]} on h1, c3 ${CIP[c3]} on h3; c1 → db.service.weft → ${CDNS:-?}: ${CBODY:-failed}"
echo "  web console of h1: ${UIFWD:-$UI inside the namespace}, $UIMEMBERS members alive on its map"
[ "$ok" = "$total" ] && [ -n "$BODY" ] && [ "$CDNS" = "${CIP[c3]}" ] && [ -n "$CBODY" ] && [ "$UIMEMBERS" = 3 ] || { echo "demo FAILED"; exit 1; }
echo "demo OK"
if [ -t 0 ] && [ -t 1 ]; then
  read -r -p "the cluster stays up for the console: press Enter to stop the demo and remove everything " _ || true
fi
