package aiproxy

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are aiproxy's Prometheus counters, registered in Caddy's metrics
// registry so they appear wherever Caddy exposes its own (the metrics
// handler, the admin endpoint).
type metrics struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	perUser  bool
}

// newMetrics registers the counters, or reuses those another aiproxy handler
// of the same config registered.
func newMetrics(reg prometheus.Registerer, perUser bool) (*metrics, error) {
	reqLabels := []string{"model", "kind", "status"}
	tokLabels := []string{"model", "kind", "type"}
	if perUser {
		reqLabels = append([]string{"user"}, reqLabels...)
		tokLabels = append([]string{"user"}, tokLabels...)
	}
	m := &metrics{perUser: perUser}
	var err error
	m.requests, err = registerCounter(reg, prometheus.CounterOpts{
		Namespace: "aiproxy",
		Name:      "requests_total",
		Help:      "Requests proxied upstream, by model, kind of endpoint and response status.",
	}, reqLabels)
	if err != nil {
		return nil, err
	}
	m.tokens, err = registerCounter(reg, prometheus.CounterOpts{
		Namespace: "aiproxy",
		Name:      "tokens_total",
		Help:      "Tokens reported by upstreams, by model, kind of endpoint and type (prompt, completion, cached, reasoning).",
	}, tokLabels)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func registerCounter(reg prometheus.Registerer, opts prometheus.CounterOpts, labels []string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(opts, labels)
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// observe counts one finished request.
func (m *metrics) observe(user, model, kind string, status int, tok tokenCounts) {
	if m == nil {
		return
	}
	labels := func(last string) []string {
		if m.perUser {
			return []string{user, model, kind, last}
		}
		return []string{model, kind, last}
	}
	m.requests.WithLabelValues(labels(strconv.Itoa(status))...).Inc()
	for _, t := range []struct {
		kind string
		n    int64
	}{
		{"prompt", tok.prompt}, {"completion", tok.completion},
		{"cached", tok.cached}, {"reasoning", tok.reasoning},
	} {
		if t.n > 0 {
			m.tokens.WithLabelValues(labels(t.kind)...).Add(float64(t.n))
		}
	}
}

// tokenCounts are the token numbers of one response.
type tokenCounts struct {
	prompt, completion, cached, reasoning int64
}
