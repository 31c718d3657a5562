package bench

import "slices"

// Summary is the spread of one metric of one system over the rounds.
type Summary struct {
	Samples []float64 `json:"samples"` // one value per successful round, in round order
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	// Ratio is this system's median divided by wireguard-go's median for the same metric,
	// or 0 when wireguard-go was not measured.
	Ratio float64 `json:"ratio_to_wireguard_go,omitempty"`
}

// summarize computes median, min and max; the median of an even count is the mean of the
// two middle values. An empty input gives zeros (and Valid reports false), since JSON has no NaN.
func summarize(samples []float64) Summary {
	s := Summary{Samples: slices.Clone(samples)}
	if len(samples) == 0 {
		return s
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	n := len(sorted)
	s.Min, s.Max = sorted[0], sorted[n-1]
	if n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return s
}

// Valid reports whether the summary holds at least one sample.
func (s Summary) Valid() bool { return len(s.Samples) > 0 }
