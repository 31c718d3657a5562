package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// twoHostsStatic starts agents on two namespaces joined by a veth, with static peers and no
// gossip: a owns 10.42.1.0/24, b 10.42.2.0/24.
func twoHostsStatic(t *testing.T) (a, b *node) {
	t.Helper()
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	ha, hb := netlab.PairT(t, "eth0", "192.168.61.1/24", "192.168.61.2/24")
	a, b = newNode(t, ha, "192.168.61.1"), newNode(t, hb, "192.168.61.2")
	a.start(staticPeerConf("10.42.1.0/24", b, "10.42.2.0/24") + "metrics_listen: 127.0.0.1:9101\n")
	b.start(staticPeerConf("10.42.2.0/24", a, "10.42.1.0/24"))
	return a, b
}

func TestNetns_L3StaticPeers(t *testing.T) {
	a, b := twoHostsStatic(t)

	// L3 runs on weft's own TUN (this kernel accepts the offloads), and says so.
	for _, n := range []*node{a, b} {
		if st := n.status(); st.TUN != "weft (offload)" {
			t.Fatalf("%s: status --json tun = %q, want weft (offload)", n.name, st.TUN)
		}
		out, err := n.cli("status")
		if err != nil || !regexp.MustCompile(`(?m)^device:\s+weft0 \(TUN, weft \(offload\)\)$`).MatchString(out) {
			t.Fatalf("%s: weft status lacks device: weft0 (TUN, weft (offload)): %v\n%s", n.name, err, out)
		}
	}

	t.Run("ping both ways", func(t *testing.T) {
		took := eventually(t, 10*time.Second, "a pings b", func() error { return a.ping("10.42.2.1", 1) })
		t.Logf("first ping a→b (with handshake) after %s", took)
		if err := a.ping("10.42.2.1", 3); err != nil {
			t.Fatal(err)
		}
		if err := b.ping("10.42.1.1", 3); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("100 MB TCP transfer, sha256 and counters", func(t *testing.T) {
		before := a.peers()[0].TxBytes
		beforeRx := b.peers()[0].RxBytes
		const size = 100 << 20
		bps := transfer(t, a, b, "10.42.2.1", 5201, size)
		t.Logf("100 MiB a→b through the overlay: %.2f Gbit/s (sha256 matched)", bps/1e9)
		pa, pb := a.peers()[0], b.peers()[0]
		sent, recv := pa.TxBytes-before, pb.RxBytes-beforeRx
		// Inner bytes: payload plus TCP/IP headers, so at least the payload went each way.
		if sent < size || recv < size {
			t.Fatalf("counters: a sent %d inner bytes, b received %d; want ≥ %d each", sent, recv, size)
		}
		// b cannot have received more than a sent to it (b's rx includes a's keepalives: 0 bytes).
		if recv > sent {
			t.Fatalf("counters disagree: b received %d bytes but a sent only %d", recv, sent)
		}
		if pb.RxPackets > pa.TxPackets {
			t.Fatalf("counters disagree: b received %d packets but a sent %d", pb.RxPackets, pa.TxPackets)
		}
		t.Logf("counters: a tx %d B / %d pkts, b rx %d B / %d pkts", pa.TxBytes, pa.TxPackets, pb.RxBytes, pb.RxPackets)
	})

	t.Run("source outside allowed prefixes is dropped and counted", func(t *testing.T) {
		// a gets an address outside its own subnet and sends from it: the packet is routed
		// to b (its destination is b's), sealed and delivered, and b's cryptokey routing drops it.
		if _, err := a.host.Run("ip", "addr", "add", "10.42.9.9/32", "dev", "weft0"); err != nil {
			t.Fatal(err)
		}
		before := dropsOf(b.peers()[0].Drops)
		_, err := a.host.Run("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", "10.42.9.9", "10.42.2.1")
		if err == nil {
			t.Fatal("ping from a source outside a's allowed prefixes got an answer")
		}
		eventually(t, 5*time.Second, "b counts the spoofed packets", func() error {
			if d := dropsOf(b.peers()[0].Drops) - before; d < 3 {
				return fmt.Errorf("b dropped %d, want ≥ 3 (drops %v)", d, b.peers()[0].Drops)
			}
			return nil
		})
		t.Logf("b's drops: %v", b.peers()[0].Drops)
	})

	t.Run("prometheus metrics", func(t *testing.T) {
		out, err := a.httpGet("http://127.0.0.1:9101/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`weft_peer_bytes_total{direction="tx",name="",peer="` + b.pub() + `"}`,
			`weft_peer_handshakes_total{name="",peer="` + b.pub() + `"}`,
			`weft_up 1`,
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("metrics lack %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, `weft_peer_bytes_total{direction="tx",name="",peer="`+b.pub()+`"} 0`+"\n") {
			t.Fatal("tx bytes to b are 0 after the transfer")
		}
	})

	t.Run("socket permission error says what to do", func(t *testing.T) {
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			netlab.SkipOrFail(t, "runuser not installed (util-linux)")
		}
		// A copy of the binary that an unprivileged user may run.
		_, bin := publicBinDir(t, "weft-unpriv")
		out, err := exec.Command(runuser, "-u", "nobody", "--", bin, "--socket", a.sock, "status").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "as root") {
			t.Fatalf("unprivileged status: %v: %s", err, out)
		}
		t.Logf("as nobody: %s", strings.TrimSpace(string(out)))
	})

	t.Run("SIGTERM tears everything down", func(t *testing.T) {
		if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := a.wait(10 * time.Second); err != nil {
			t.Fatalf("agent after SIGTERM: %v\n%s", err, a.logs())
		}
		if out, err := a.host.Run("ip", "link", "show", "weft0"); err == nil {
			t.Fatalf("weft0 still exists after SIGTERM: %s", out)
		}
		if _, err := os.Stat(a.sock); !os.IsNotExist(err) {
			t.Fatalf("control socket left behind: %v", err)
		}
	})
}

// dropsOf sums the drop reasons that mean "source not allowed".
func dropsOf(m map[string]uint64) uint64 {
	var n uint64
	for k, v := range m {
		if k == "not_allowed_source" {
			n += v
		}
	}
	return n
}

// TestNetns_L3SharedCrypto runs both agents with crypto_workers: 4, which shares every
// batch's encryption and decryption among four goroutines however few cores the machine
// has (by default only from 4 cores up): 50 MiB each way arrive with their SHA-256
// intact, both sides really shared batches (the datapath counter), and no message failed
// authentication or was taken for a replay.
func TestNetns_L3SharedCrypto(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	ha, hb := netlab.PairT(t, "eth0", "192.168.62.1/24", "192.168.62.2/24")
	a, b := newNode(t, ha, "192.168.62.1"), newNode(t, hb, "192.168.62.2")
	a.start(staticPeerConf("10.42.1.0/24", b, "10.42.2.0/24") + "crypto_workers: 4\n")
	b.start(staticPeerConf("10.42.2.0/24", a, "10.42.1.0/24") + "crypto_workers: 4\n")
	eventually(t, 10*time.Second, "a pings b", func() error { return a.ping("10.42.2.1", 1) })
	const size = 50 << 20
	bps := transfer(t, a, b, "10.42.2.1", 5201, size)
	bps2 := transfer(t, b, a, "10.42.1.1", 5202, size)
	t.Logf("50 MiB each way with shared crypto: a→b %.2f, b→a %.2f Gbit/s (sha256 matched)", bps/1e9, bps2/1e9)
	for _, n := range []*node{a, b} {
		st := n.status()
		if st.Counters["crypto_parallel_batches"] == 0 {
			t.Errorf("%s shared no batch (counters %v)", n.name, st.Counters)
		}
		for _, r := range []string{"auth_failed", "replayed", "malformed"} {
			if st.Drops[r] != 0 {
				t.Errorf("%s dropped %d as %s (drops %v)", n.name, st.Drops[r], r, st.Drops)
			}
		}
		t.Logf("%s: %d shared batches, drops %v", n.name, st.Counters["crypto_parallel_batches"], st.Drops)
	}
}

// TestNetns_L3PartialChecksums: two agents on weft's TUN leave the inner TCP checksums of
// their segments partial for each other (neither computes them: the receiver's kernel
// takes them as CHECKSUM_PARTIAL), and 30 MiB each way arrive with their SHA-256 intact.
// Then b comes back on wireguard-go's TUN, which cannot take partial checksums and so does
// not say it does: a completes every checksum for it from the new session on (its count
// of partial packets sent stays where it was), and 30 MiB each way arrive intact again.
func TestNetns_L3PartialChecksums(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	ha, hb := netlab.PairT(t, "eth0", "192.168.63.1/24", "192.168.63.2/24")
	a, b := newNode(t, ha, "192.168.63.1"), newNode(t, hb, "192.168.63.2")
	confA, confB := staticPeerConf("10.42.1.0/24", b, "10.42.2.0/24"), staticPeerConf("10.42.2.0/24", a, "10.42.1.0/24")
	a.start(confA)
	b.start(confB)
	eventually(t, 10*time.Second, "a pings b", func() error { return a.ping("10.42.2.1", 1) })
	const size = 30 << 20
	transfer(t, a, b, "10.42.2.1", 5201, size)
	transfer(t, b, a, "10.42.1.1", 5202, size)
	sa, sb := a.status().Counters, b.status().Counters
	t.Logf("both on weft's TUN: a sent %d and received %d partial, b sent %d and received %d", sa["csum_partial_sent"], sa["csum_partial_received"], sb["csum_partial_sent"], sb["csum_partial_received"])
	if sa["csum_partial_sent"] == 0 || sb["csum_partial_received"] == 0 || sb["csum_partial_sent"] == 0 || sa["csum_partial_received"] == 0 {
		t.Fatalf("checksums were not left partial between two weft TUNs: a %v, b %v", sa, sb)
	}

	b.kill()
	b.startEnv(confB, "WEFT_TUN_DEVICE=wireguard-go")
	if st := b.status(); !strings.HasPrefix(st.TUN, "wireguard-go") {
		t.Fatalf("b restarted on %q, want wireguard-go's TUN", st.TUN)
	}
	// b has no session: its first packet starts the handshake (a would wait for its
	// no-reply timer otherwise).
	eventually(t, 15*time.Second, "b pings a", func() error { return b.ping("10.42.1.1", 1) })
	before := a.status().Counters["csum_partial_sent"]
	transfer(t, a, b, "10.42.2.1", 5203, size)
	transfer(t, b, a, "10.42.1.1", 5204, size)
	sa, sb = a.status().Counters, b.status().Counters
	if sa["csum_partial_sent"] != before {
		t.Errorf("a sent %d partial checksums to a b that does not take them", sa["csum_partial_sent"]-before)
	}
	if sb["csum_partial_sent"] != 0 || sb["csum_partial_received"] != 0 {
		t.Errorf("b on wireguard-go's TUN: %v", sb)
	}
	for _, n := range []*node{a, b} {
		if d := n.status().Drops; d["malformed"] != 0 || d["auth_failed"] != 0 {
			t.Errorf("%s drops %v", n.name, d)
		}
	}
}
