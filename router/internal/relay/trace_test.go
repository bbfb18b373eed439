package relay

import (
	"testing"

	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/shared/tracing"
)

// render names the trace context header itself (shared/tracing imports
// NATS, render does not): both must say the same.
func TestTraceparentHeaderName(t *testing.T) {
	if render.TraceparentHeader != tracing.Traceparent {
		t.Errorf("render.TraceparentHeader %q, tracing.Traceparent %q", render.TraceparentHeader, tracing.Traceparent)
	}
}
