package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Metric keys of SystemResult.Metrics.
const (
	MetricTCPSingle = "tcp_single" // iperf3, one TCP stream, Gbit/s received
	MetricTCPMulti  = "tcp_multi"  // iperf3, Options.Streams TCP streams, Gbit/s received
	MetricPingRTT   = "ping_rtt"   // ping, mean round-trip time of one run, milliseconds
	MetricPingP99   = "ping_p99"   // ping, 99th percentile round-trip time of one run, milliseconds
	// MetricCPUPerGB: CPU seconds (user and system, /proc/PID/stat) the system's own
	// processes on both hosts spent during the single-stream iperf3 run, per GB (1e9 bytes)
	// received; only for systems with processes (weft, wireguard-go), not kernel ones.
	MetricCPUPerGB = "cpu_s_per_gb"
)

// metricOrder is the order of metrics in tables and charts.
var metricOrder = []string{MetricTCPSingle, MetricTCPMulti, MetricPingRTT, MetricPingP99, MetricCPUPerGB}

// processMetrics are the metrics only systems with processes of their own have.
var processMetrics = []string{MetricCPUPerGB}

// Report is the outcome of one Run: every system's metrics over all rounds. It is written as
// report.json.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     HostInfo  `json:"host"`
	Rounds   int       `json:"rounds"`
	// DurationSeconds is the length of each iperf3 run.
	DurationSeconds float64 `json:"duration_seconds"`
	Streams         int     `json:"streams"`
	Pings           int     `json:"pings"`
	// UnderlayMTUs are the underlay MTUs measured, in order (Options.UnderlayMTUs).
	UnderlayMTUs []int `json:"underlay_mtus,omitempty"`
	// Systems are in the order they were measured in the first round.
	Systems []SystemResult `json:"systems"`
	// Skipped names the systems of the default set that could not run here, and why.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Files are the paths Run wrote (JSON, table, charts).
	Files []string `json:"files,omitempty"`
}

// HostInfo describes the machine the numbers come from.
type HostInfo struct {
	Kernel    string `json:"kernel"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	// LoadAverage is /proc/loadavg's 1, 5 and 15 minute figures when the run started: a
	// loaded machine explains a noisy run.
	LoadAverage string `json:"load_average,omitempty"`
}

// SystemResult holds one system's metrics, keyed by the Metric constants.
type SystemResult struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Metrics     map[string]Summary `json:"metrics"`
	// UnderlayMTU is the MTU of the lab's underlay link this result was measured at.
	UnderlayMTU int `json:"underlay_mtu,omitempty"`
	// MTU is the overlay device's MTU on host a as measured (0: no overlay device).
	MTU int `json:"mtu,omitempty"`
	// Errors lists what failed, one entry per failed step and round.
	Errors []string `json:"errors,omitempty"`
}

// Skipped is a system left out of the default set.
type Skipped struct {
	System string `json:"system"`
	Reason string `json:"reason"`
}

// System returns the result of the named system (at the first underlay MTU measured), or nil.
func (r *Report) System(name string) *SystemResult {
	for i := range r.Systems {
		if r.Systems[i].Name == name {
			return &r.Systems[i]
		}
	}
	return nil
}

// SystemAt returns the result of the named system at underlay MTU mtu, or nil.
func (r *Report) SystemAt(name string, mtu int) *SystemResult {
	for i := range r.Systems {
		if r.Systems[i].Name == name && r.Systems[i].UnderlayMTU == mtu {
			return &r.Systems[i]
		}
	}
	return nil
}

// multiMTU reports whether the results span several underlay MTUs.
func (r *Report) multiMTU() bool {
	for _, s := range r.Systems {
		if s.UnderlayMTU != r.Systems[0].UnderlayMTU {
			return true
		}
	}
	return false
}

// label names a result in tables and charts: the system, and its underlay MTU when the
// report spans several.
func (r *Report) label(s *SystemResult) string {
	if r.multiMTU() {
		return fmt.Sprintf("%s @%d", s.Name, s.UnderlayMTU)
	}
	return s.Name
}

// metricLabel is the human name of a metric, with its unit.
func (r *Report) metricLabel(key string) string {
	switch key {
	case MetricTCPSingle:
		return "TCP 1 stream (Gbit/s)"
	case MetricTCPMulti:
		return fmt.Sprintf("TCP %d streams (Gbit/s)", r.Streams)
	case MetricPingRTT:
		return "ping RTT (ms)"
	case MetricPingP99:
		return "ping RTT p99 (ms)"
	case MetricCPUPerGB:
		return "CPU s/GB (1 stream)"
	}
	return key
}

// computeRatios fills each Summary.Ratio with the system's median over wireguard-go's at
// the same underlay MTU.
func (r *Report) computeRatios() {
	for i := range r.Systems {
		ref := r.SystemAt(SystemWireGuardGo, r.Systems[i].UnderlayMTU)
		for _, key := range metricOrder {
			s, ok := r.Systems[i].Metrics[key]
			if !ok {
				continue
			}
			s.Ratio = 0
			if ref != nil {
				if base, ok := ref.Metrics[key]; ok && base.Valid() && base.Median > 0 && s.Valid() {
					s.Ratio = s.Median / base.Median
				}
			}
			r.Systems[i].Metrics[key] = s
		}
	}
}

// WriteTable prints the report as a plain-text table: one line per system and metric with
// the overlay device's MTU in effect, median, min, max over the rounds and the ratio of
// medians to wireguard-go at the same underlay MTU. With several underlay MTUs each system
// appears once per MTU, named "system @MTU".
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	nameW, labelW := len("system"), len("metric")
	for i := range r.Systems {
		nameW = max(nameW, len(r.label(&r.Systems[i])))
	}
	for _, key := range metricOrder {
		labelW = max(labelW, len(r.metricLabel(key)))
	}
	fmt.Fprintf(&b, "weft bench: %d round(s), iperf3 %gs, %d streams, %d pings; kernel %s, %d CPUs",
		r.Rounds, r.DurationSeconds, r.Streams, r.Pings, r.Host.Kernel, r.Host.CPUs)
	if len(r.UnderlayMTUs) > 0 {
		fmt.Fprintf(&b, ", underlay MTU %s", joinInts(r.UnderlayMTUs))
	}
	if r.Host.LoadAverage != "" {
		fmt.Fprintf(&b, ", load %s", r.Host.LoadAverage)
	}
	b.WriteString("\n")
	row := "%-*s  %5s  %-*s  %9s  %9s  %9s  %15s\n"
	fmt.Fprintf(&b, row, nameW, "system", "mtu", labelW, "metric", "median", "min", "max", "vs wireguard-go")
	for i := range r.Systems {
		s := &r.Systems[i]
		name, mtu := r.label(s), "-"
		if s.MTU > 0 {
			mtu = fmt.Sprint(s.MTU)
		}
		for _, key := range metricOrder {
			m, ok := s.Metrics[key]
			if !ok || !m.Valid() {
				fmt.Fprintf(&b, row, nameW, name, mtu, labelW, r.metricLabel(key), "-", "-", "-", "-")
				continue
			}
			ratio := "-"
			if m.Ratio > 0 {
				ratio = fmt.Sprintf("%.2fx", m.Ratio)
			}
			fmt.Fprintf(&b, row, nameW, name, mtu, labelW, r.metricLabel(key),
				formatValue(m.Median), formatValue(m.Min), formatValue(m.Max), ratio)
		}
	}
	for i := range r.Systems {
		s := &r.Systems[i]
		if s.Name != SystemWeft {
			continue
		}
		if m := s.Metrics[MetricTCPSingle]; m.Ratio > 0 {
			verdict := "met"
			if m.Ratio < 1 {
				verdict = "NOT met"
			}
			at := ""
			if r.multiMTU() {
				at = fmt.Sprintf(" at underlay MTU %d", s.UnderlayMTU)
			}
			fmt.Fprintf(&b, "speed target (weft single-stream TCP >= 1.0x wireguard-go)%s: %.2fx, %s\n", at, m.Ratio, verdict)
		}
	}
	for i := range r.Systems {
		for _, e := range r.Systems[i].Errors {
			fmt.Fprintf(&b, "error: %s: %s\n", r.label(&r.Systems[i]), e)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "skipped: %s: %s\n", s.System, s.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatValue prints a metric value with three significant decimals for small values.
func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Save writes report.json, table.txt, chart.svg and chart.png into dir (created if needed)
// and records their paths in r.Files.
func (r *Report) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"table.txt", r.WriteTable},
		{"chart.svg", r.WriteSVG},
		{"chart.png", r.WritePNG},
		{"report.json", r.WriteJSON}, // its Files, set below, list all four
	}
	r.Files = nil
	for _, f := range files {
		r.Files = append(r.Files, filepath.Join(dir, f.name))
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.write); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
