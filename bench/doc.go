// Package bench is the throughput and latency harness of the weft-bench binary
// (cmd/weft-bench, which `weft bench` launches): it compares weft with the alternatives on the
// same machine, in the same run, in alternation.
//
// Every measurement happens in a fresh lab (package netlab) of two network namespaces, a and
// b, joined by a veth pair with the underlay 192.168.231.1/24 (a) and .2/24 (b), addresses
// that exist only inside the lab. Each system brings its overlay up between them:
//
//	veth           the underlay itself, no overlay (the ceiling)
//	vxlan          Linux kernel vxlan devices, VNI 42, UDP 4789, 10.231.0.0/24, plaintext
//	wireguard-go   wireguard-go's device as a library on a TUN, in its own process
//	               (`weft-bench __wireguard-go`, WireGuardGoMain), 10.231.1.0/24
//	weft           `weft agent -c FILE` with static peers and gossip off, 10.232.{1,2}.0/24
//	weft-l2        weft agent in L2 mode (TAP), encrypted, both hosts on 10.232.3.0/24
//	weft-l2-plain  weft agent in L2 mode, plain RFC 7348 VXLAN on UDP 4789
//	weft-netstack  a runs the agent rootless (netstack: true, no TUN) and iperf3 goes through
//	               its local TCP forward 127.0.0.1:5201 to b (L3 TUN); no ping
//
// Then from a to b's overlay address: ping (Options.Pings requests 10 ms apart, the mean RTT
// counts), iperf3 with one TCP stream and with Options.Streams streams (the receiver's total
// counts). Round r measures every system in turn, starting one further each round, so that
// the machine's drift spreads over all of them. The Report holds, per system and metric, the
// median, min and max over the rounds and the ratio of medians to wireguard-go; it prints as
// a table and is saved as JSON with an SVG and PNG bar chart (gonum/plot).
//
// Run needs root, iproute2, ping and iperf3. The weft rows run `weft agent` of Options.WeftBin
// (by default weft next to the running executable, else on PATH); the wireguard-go row runs the
// hidden `__wireguard-go` command of Options.WireGuardGoBin (by default the running executable,
// weft-bench). Rows that cannot run are skipped with the reason.
package bench
