package bench

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMedianInterval(t *testing.T) {
	if in := medianInterval([]float64{1, 2, 3, 4, 5}); in != nil {
		t.Errorf("five figures: %+v, want none (even the extremes cover less than 95%%)", in)
	}
	six := []float64{1.2, 0.9, 1.5, 1.1, 0.8, 1.0}
	if in := medianInterval(six); in == nil || in.Low != 0.8 || in.High != 1.5 {
		t.Errorf("six figures: %+v, want the smallest and the largest", in)
	}
	if six[0] != 1.2 {
		t.Errorf("medianInterval sorted its input: %v", six)
	}
	// Twenty: P(at most 5 of 20 below the median) = 0.021, at most 6 = 0.058,
	// so the 6th smallest and the 6th largest.
	var twenty []float64
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(20) {
		twenty = append(twenty, float64(i+1))
	}
	if in := medianInterval(twenty); in == nil || in.Low != 6 || in.High != 15 {
		t.Errorf("twenty figures 1..20: %+v, want 6 to 15", in)
	}
}

// TestMedianIntervalCoverage draws from a skewed distribution (the
// exponential, median ln 2) and counts how often the interval holds the
// median: at least 95%, and not the whole range every time.
func TestMedianIntervalCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, n := range []int{6, 10, 20} {
		const trials = 4000
		covered := 0
		for range trials {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = rng.ExpFloat64()
			}
			in := medianInterval(xs)
			if in.Low <= math.Ln2 && math.Ln2 <= in.High {
				covered++
			}
		}
		// Exact coverage: 0.969 for 6, 0.979 for 10, 0.959 for 20; the
		// band allows for 4000 trials' sampling error.
		if got := float64(covered) / trials; got < 0.945 || got > 0.99 {
			t.Errorf("n=%d: the interval held the median in %.3f of the trials, want about 0.96 to 0.98", n, got)
		}
	}
}

func TestBinomialHalf(t *testing.T) {
	for _, n := range []int{1, 6, 20, 200} {
		sum := 0.0
		for k := 0; k <= n; k++ {
			sum += binomialHalf(n, k)
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("n=%d: probabilities sum to %v", n, sum)
		}
	}
	if got := binomialHalf(6, 0); math.Abs(got-1.0/64) > 1e-12 {
		t.Errorf("P(X=0), n=6: %v, want 1/64", got)
	}
}
