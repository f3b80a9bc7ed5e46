package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// metrics are the gateway's own Prometheus metrics, on a registry it owns.
type metrics struct {
	enrollments       *prometheus.CounterVec
	renewals          *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	heartbeats        prometheus.Counter
	events            prometheus.Counter
	streams           *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leash_gateway_enrollments_total",
			Help: "Token enrollments by result."}, []string{"result"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leash_gateway_renewals_total",
			Help: "Certificate renewals over mTLS by result."}, []string{"result"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leash_gateway_handshake_failures_total",
			Help: "Refused TLS handshakes on the API listener by reason."}, []string{"reason"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "leash_gateway_heartbeats_total",
			Help: "Heartbeats accepted."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "leash_gateway_events_total",
			Help: "Runner events stored."}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leash_gateway_tunnel_streams_total",
			Help: "Streams opened through runner tunnels by result."}, []string{"result"}),
	}
	m.enrollments.WithLabelValues("ok")
	m.renewals.WithLabelValues("ok")
	reg.MustRegister(m.enrollments, m.renewals, m.handshakeFailures, m.heartbeats, m.events, m.streams,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "leash_gateway_tunnels",
			Help: "Runners with a tunnel open."}, func() float64 { return float64(s.tunnels.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "leash_gateway_tunnel_streams_open",
			Help: "Tunnel streams in use: proxied connections and requests, and kept-alive streams of domains and Docker proxies."},
			func() float64 { return float64(s.tunnels.openStreams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "leash_gateway_longpoll_waiters",
			Help: "Runners' job long-polls waiting right now."}, func() float64 { return float64(s.polls.count()) }),
		&storeCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// storeCollector reads runner and job gauges from the store at scrape time,
// so every replica reports the shared truth.
type storeCollector struct{ s *Server }

var (
	descRunners  = prometheus.NewDesc("leash_gateway_runners", "Registered runners by status.", []string{"status"}, nil)
	descNotAfter = prometheus.NewDesc("leash_gateway_runner_cert_not_after_seconds",
		"Unix time at which each runner's current certificate expires.", []string{"runner"}, nil)
	descJobs = prometheus.NewDesc("leash_gateway_jobs", "Jobs by state.", []string{"state"}, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRunners
	ch <- descNotAfter
	ch <- descJobs
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	runners, err := c.s.st.Runners(ctx, store.RunnerQuery{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRunners, err)
		return
	}
	counts := map[string]int{protocol.RunnerOnline: 0, protocol.RunnerOffline: 0, protocol.RunnerRevoked: 0}
	for _, r := range runners {
		counts[r.Status]++
		if !r.CertNotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(descNotAfter, prometheus.GaugeValue, float64(r.CertNotAfter.Unix()), r.ID)
		}
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descRunners, prometheus.GaugeValue, float64(n), st)
	}
	for _, state := range []string{protocol.JobQueued, protocol.JobRunning, protocol.JobSucceeded, protocol.JobFailed} {
		jobs, err := c.s.st.Jobs(ctx, store.JobQuery{State: state})
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descJobs, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(len(jobs)), state)
	}
}
