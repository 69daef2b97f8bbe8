package aiproxy

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiproxy/aiproxy/usage"
)

// requestSeries gathers aiproxy_requests_total: the count of each series,
// by its labels written as user/model/kind/status.
func requestSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		if f.GetName() != "aiproxy_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["user"]+"/"+l["model"]+"/"+l["kind"]+"/"+l["status"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestMetricsModelLabelsBounded: the first maxModelLabels models keep their
// label value; later ones are counted under usage.OtherModel.
func TestMetricsModelLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxModelLabels + 5 {
		m.observe("ann", fmt.Sprintf("m%d", i), "chat", 200, tokenCounts{prompt: 1})
	}
	m.observe("bob", "m0", "chat", 200, tokenCounts{})
	series := requestSeries(t, reg)
	if len(series) != maxModelLabels+2 {
		t.Fatalf("%d series, want %d models, %s and bob's", len(series), maxModelLabels, usage.OtherModel)
	}
	for key, want := range map[string]float64{
		"ann/m0/chat/200": 1,
		fmt.Sprintf("ann/m%d/chat/200", maxModelLabels-1): 1,
		"ann/" + usage.OtherModel + "/chat/200":           5,
		"bob/m0/chat/200":                                 1,
	} {
		if series[key] != want {
			t.Errorf("%s = %v, want %v", key, series[key], want)
		}
	}
}

// TestMetricsSeriesCacheBounded: at most maxCachedSeries series keep their
// counters looked up; requests of further series still count.
func TestMetricsSeriesCacheBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, true)
	if err != nil {
		t.Fatal(err)
	}
	n := maxCachedSeries + 10
	for range 2 {
		for i := range n {
			m.observe(fmt.Sprintf("u%d", i), "gpt-4o", "chat", 200, tokenCounts{prompt: 3})
		}
	}
	cached := 0
	m.cache.Range(func(any, any) bool { cached++; return true })
	if cached != maxCachedSeries {
		t.Fatalf("%d series cached, want %d", cached, maxCachedSeries)
	}
	series := requestSeries(t, reg)
	if len(series) != n || series[fmt.Sprintf("u%d/gpt-4o/chat/200", n-1)] != 2 {
		t.Fatalf("%d series (want %d), the last one counted %v times (want 2)",
			len(series), n, series[fmt.Sprintf("u%d/gpt-4o/chat/200", n-1)])
	}
}
