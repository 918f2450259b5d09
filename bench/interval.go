package bench

import (
	"math"
	"slices"
)

// Interval is a confidence interval for a median: Low and High are two of
// the figures it was computed from.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// intervalConfidence is the least coverage medianInterval gives.
const intervalConfidence = 0.95

// medianInterval is a distribution-free confidence interval for the median
// of what xs are draws of, with coverage at least intervalConfidence: the
// k-th smallest and k-th largest of xs, for the largest k such that fewer
// than k of n draws fall below the median with probability at most
// (1 - intervalConfidence) / 2. Each draw is below the median with
// probability 1/2, whatever the distribution, so that count is
// Binomial(n, 1/2). It assumes only that the draws are independent: the
// bench's per-round ratios, each of two runs next to each other in time.
// nil when no k qualifies: for fewer than six figures, whose smallest and
// largest cover the median only 1 - 2/32 = 93.75% of the time with five.
// xs is not modified.
func medianInterval(xs []float64) *Interval {
	n := len(xs)
	tail := (1 - intervalConfidence) / 2
	k, below := 0, 0.0 // below: P(at most k draws below the median)
	for {
		next := below + binomialHalf(n, k)
		if next > tail {
			break
		}
		below = next
		k++
	}
	if k == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return &Interval{Low: s[k-1], High: s[n-k]}
}

// binomialHalf is P(X = k) for X ~ Binomial(n, 1/2).
func binomialHalf(n, k int) float64 {
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x + 1)); return v }
	return math.Exp(lg(n) - lg(k) - lg(n-k) - float64(n)*math.Ln2)
}
