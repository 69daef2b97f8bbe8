package aiproxy

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiproxy/aiproxy/keystore"
	"github.com/aiproxy/aiproxy/usage"
)

// metrics are aiproxy's Prometheus counters, registered in Caddy's metrics
// registry so they appear wherever Caddy exposes its own (the metrics
// handler, the admin endpoint).
type metrics struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	rejects  [rejectReasons]prometheus.Counter
	logDrops prometheus.Counter // request log records dropped
	perUser  bool
	cache    sync.Map // seriesKey -> *seriesCounters; at most maxCachedSeries

	mu     sync.Mutex          // guards models and cached, and adding to cache
	models map[string]struct{} // model label values in use; at most maxModelLabels
	cached int                 // entries in cache
}

// maxModelLabels bounds the distinct values of the model label, all users
// together; further models are counted under usage.OtherModel. Usage
// statistics bound models per user and day; this bounds the series a
// process keeps for good.
const maxModelLabels = 1000

// maxCachedSeries bounds the series whose counters are kept looked up.
// Requests of further series look their counters up in the vectors each
// time: slower, with the same counts.
const maxCachedSeries = 10_000

// newMetrics registers the counters, or reuses those another aiproxy handler
// of the same config registered. The counters always carry the user label,
// so that sites with and without metrics_per_user share them (a registry
// refuses one name with two label sets); without it the label is empty,
// which PromQL treats as no label at all.
func newMetrics(reg prometheus.Registerer, perUser bool) (*metrics, error) {
	reqLabels := []string{"user", "model", "kind", "status"}
	tokLabels := []string{"user", "model", "kind", "type"}
	m := &metrics{perUser: perUser, models: make(map[string]struct{})}
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
	rejects, err := registerCounter(reg, prometheus.CounterOpts{
		Namespace: "aiproxy",
		Name:      "rejected_total",
		Help:      "Requests refused by a key's policy before they were sent, by reason (model_not_allowed, rate_limit, budget, parallel).",
	}, []string{"reason"})
	if err != nil {
		return nil, err
	}
	for i, reason := range rejectNames {
		m.rejects[i] = rejects.WithLabelValues(reason)
	}
	logDrops, err := registerCounter(reg, prometheus.CounterOpts{
		Namespace: "aiproxy",
		Name:      "request_log_dropped_total",
		Help:      "Request log records dropped before they were written: the queue was full while the store was slow or down, or the store refused them.",
	}, nil)
	if err != nil {
		return nil, err
	}
	m.logDrops = logDrops.WithLabelValues()
	for _, from := range []string{"memory", "redis"} {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace:   "aiproxy",
			Name:        "redis_key_lookups_total",
			Help:        "Key lookups of the Redis store, by where they were answered: memory (keys seen before, kept true by Redis's invalidations) or redis.",
			ConstLabels: prometheus.Labels{"from": from},
		}, redisKeyLookups(from))
		// Read from the process's counters: one registered by an earlier
		// config counts the same.
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, err
		}
	}
	return m, nil
}

// redisKeyLookups returns the count of Redis store key lookups answered
// from memory or from Redis.
func redisKeyLookups(from string) func() float64 {
	return func() float64 {
		memory, redis := keystore.RedisKeyLookups()
		if from == "memory" {
			return float64(memory)
		}
		return float64(redis)
	}
}

// requestLogDropped counts n request log records dropped.
func (m *metrics) requestLogDropped(n int) {
	if m != nil {
		m.logDrops.Add(float64(n))
	}
}

// Why a key's policy refused a request, as the rejected_total metric says.
const (
	rejectModel    = iota // the model is not on the key's list (or has no price for its USD budget)
	rejectRate            // rpm or tpm
	rejectBudget          // a budget is spent
	rejectParallel        // too many requests in flight
	rejectReasons
)

var rejectNames = [rejectReasons]string{"model_not_allowed", "rate_limit", "budget", "parallel"}

// rejected counts a request a key's policy refused.
func (m *metrics) rejected(reason int) {
	if m != nil {
		m.rejects[reason].Inc()
	}
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
	if !m.perUser {
		user = ""
	}
	s := m.series(seriesKey{user: user, model: model, kind: kind, status: status})
	s.requests.Inc()
	for i, n := range [...]int64{tok.prompt, tok.completion, tok.cached, tok.reasoning} {
		if n > 0 {
			s.token(m, i).Add(float64(n))
		}
	}
}

// tokenTypes label aiproxy_tokens_total, in tokenCounts' order.
var tokenTypes = [...]string{"prompt", "completion", "cached", "reasoning"}

// seriesKey identifies the counters of one kind of request.
type seriesKey struct {
	user, model, kind string
	status            int
}

// seriesCounters are the counters a request of one seriesKey adds to,
// looked up once: the registry's own lookup hashes every label each time.
// Token counters are made on first use, so types never seen (no cached
// tokens, failed requests) add no series.
type seriesCounters struct {
	key      seriesKey
	requests prometheus.Counter
	tokens   [len(tokenTypes)]atomic.Value // prometheus.Counter
}

// token returns the counter of token type i.
func (s *seriesCounters) token(m *metrics, i int) prometheus.Counter {
	if c, ok := s.tokens[i].Load().(prometheus.Counter); ok {
		return c
	}
	// Racing callers get the same counter: the vector owns it.
	c := m.tokens.WithLabelValues(s.key.labels(tokenTypes[i])...)
	s.tokens[i].Store(c)
	return c
}

// labels lists the label values of k, last being the status or token type.
func (k seriesKey) labels(last string) []string {
	return []string{k.user, k.model, k.kind, last}
}

// series returns the counters of k, its model replaced by usage.OtherModel
// when it is not among the first maxModelLabels seen.
func (m *metrics) series(k seriesKey) *seriesCounters {
	if s, ok := m.cache.Load(k); ok {
		return s.(*seriesCounters)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.models[k.model]; !ok {
		if len(m.models) >= maxModelLabels {
			k.model = usage.OtherModel
		} else {
			m.models[k.model] = struct{}{}
		}
	}
	if s, ok := m.cache.Load(k); ok {
		return s.(*seriesCounters)
	}
	s := &seriesCounters{key: k, requests: m.requests.WithLabelValues(k.labels(strconv.Itoa(k.status))...)}
	if m.cached < maxCachedSeries {
		m.cache.Store(k, s)
		m.cached++
	}
	return s
}

// tokenCounts are the token numbers of one response.
type tokenCounts struct {
	prompt, completion, cached, reasoning int64
}
