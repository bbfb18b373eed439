package pipeline

import "testing"

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		name, spec, listen, problem string
	}{
		{name: "absent"},
		{name: "host and port", spec: "  metrics: {listen: \"127.0.0.1:9464\"}\n", listen: "127.0.0.1:9464"},
		{name: "every interface", spec: "  metrics: {listen: \":9464\"}\n", listen: ":9464"},
		{name: "no port", spec: "  metrics: {listen: localhost}\n", problem: `spec.metrics.listen: "localhost" is not host:port (e.g. 127.0.0.1:9464, or :9464 for every interface)`},
		{name: "bad port", spec: "  metrics: {listen: \"h:http\"}\n", problem: `spec.metrics.listen: "h:http" is not host:port (e.g. 127.0.0.1:9464, or :9464 for every interface)`},
		{name: "unknown key", spec: "  metrics: {listn: \":1\"}\n", problem: "spec.metrics.listn: unknown key (did you mean listen?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(doc(tc.spec, natsA)), env())
			if tc.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.Metrics.Listen != tc.listen {
					t.Fatalf("listen %q, want %q", f.Metrics.Listen, tc.listen)
				}
				return
			}
			errs, _ := err.(*Errors)
			if errs == nil || errs.Len() != 1 || errs.For(ScopeCollector).Len() != 1 || errs.For(ScopeRouter).Len() != 1 {
				t.Fatalf("want one problem for both processes, got %v", err)
			}
			if got := errs.list[0].String(); got != tc.problem {
				t.Fatalf("problem %q\nwant    %q", got, tc.problem)
			}
		})
	}
}
