package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/peers"
)

func TestPeerState(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	cases := []struct {
		name     string
		endpoint bool
		last     time.Time
		v        peers.SessionView
		want     string
		reason   string
	}{
		{"no endpoint", false, time.Time{}, peers.SessionView{}, PeerNoEndpoint, ""},
		{"never tried", true, time.Time{}, peers.SessionView{}, PeerIdle, ""},
		{"first initiation out", true, time.Time{}, peers.SessionView{InFlight: true, Started: ago(time.Second), Sent: 1}, PeerHandshaking, ""},
		{"unanswered", true, time.Time{}, peers.SessionView{InFlight: true, Started: ago(6 * time.Second), Sent: 2}, PeerFailing, "no response (2 initiation(s)"},
		{"cookie", true, time.Time{}, peers.SessionView{InFlight: true, Started: ago(6 * time.Second), Sent: 2, Cookie: true}, PeerFailing, "cookie required"},
		{"up", true, ago(time.Minute), peers.SessionView{}, PeerUp, ""},
		{"up, rekeying", true, ago(2 * time.Minute), peers.SessionView{InFlight: true, Started: ago(time.Second), Sent: 1}, PeerUp, ""},
		{"up, rekey unanswered", true, ago(2 * time.Minute), peers.SessionView{InFlight: true, Started: ago(10 * time.Second), Sent: 3}, PeerFailing, "no response"},
		{"expired", true, ago(4 * time.Minute), peers.SessionView{}, PeerIdle, ""},
		{"gave up after the last handshake", true, ago(10 * time.Minute), peers.SessionView{GaveUp: 1, LastGaveUp: ago(time.Minute)}, PeerFailing, "no response (gave up"},
		{"gave up before the last handshake", true, ago(time.Minute), peers.SessionView{GaveUp: 1, LastGaveUp: ago(5 * time.Minute)}, PeerUp, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, reason := peerState(now, tc.endpoint, tc.last, tc.v)
			if st != tc.want || !strings.HasPrefix(reason, tc.reason) || (tc.reason == "") != (reason == "") {
				t.Fatalf("state %q reason %q, want %q %q", st, reason, tc.want, tc.reason)
			}
		})
	}
}
