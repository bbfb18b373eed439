package pipeline

import "github.com/pgjet/pgjet/shared/metrics"

// Metrics is spec.metrics: the HTTP endpoint of /metrics, /healthz and
// /readyz. Both processes read it, so that every collector and router of a
// pipeline is scraped on the same port; processes sharing a host need
// --metrics for all but one.
type Metrics struct {
	// Listen is HOST:PORT; "" (the default): no endpoint.
	Listen string
}

func (d *decoder) metrics(spec *mapReader, mt *Metrics) {
	n, p := spec.get("metrics")
	m := d.mapping(n, p)
	if ln, lp := m.get("listen"); ln != nil {
		if s, ok := d.str(ln, lp); ok {
			if err := metrics.CheckAddr(s.text); err != nil {
				d.add(lp, "%s %v", s.show(), err)
			} else {
				mt.Listen = s.text
			}
		}
	}
	m.rest(nil)
}
