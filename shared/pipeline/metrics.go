package pipeline

import (
	"net"
	"strconv"
)

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
			_, port, err := net.SplitHostPort(s.text)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
				d.add(lp, "%s is not host:port (e.g. 127.0.0.1:9464, or :9464 for every interface)", s.show())
			} else {
				mt.Listen = s.text
			}
		}
	}
	m.rest(nil)
}
