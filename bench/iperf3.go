package bench

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrIperf3 is wrapped by every failure that iperf3 itself reported in its JSON output.
var ErrIperf3 = errors.New("iperf3")

// iperf3Output is the part of `iperf3 -c ... -J` that the harness reads.
type iperf3Output struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int64   `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// iperf3Result is one TCP throughput measurement.
type iperf3Result struct {
	BitsPerSecond float64 // as received by the server, all streams together
	Bytes         float64 // received by the server, all streams together
	Retransmits   int64   // TCP retransmissions seen by the sender
}

// parseIperf3 reads the JSON that `iperf3 -c ... -J` prints. The throughput is the receiver's
// sum over all streams (sum_received), which is what arrived, not what was queued.
func parseIperf3(data []byte) (iperf3Result, error) {
	var out iperf3Output
	if err := json.Unmarshal(data, &out); err != nil {
		return iperf3Result{}, fmt.Errorf("%w: parsing JSON output: %v", ErrIperf3, err)
	}
	if out.Error != "" {
		return iperf3Result{}, fmt.Errorf("%w: %s", ErrIperf3, out.Error)
	}
	bps := out.End.SumReceived.BitsPerSecond
	if bps <= 0 {
		return iperf3Result{}, fmt.Errorf("%w: no data received (sum_received.bits_per_second = %v)", ErrIperf3, bps)
	}
	return iperf3Result{BitsPerSecond: bps, Bytes: out.End.SumReceived.Bytes, Retransmits: out.End.SumSent.Retransmits}, nil
}
