package relay

import "testing"

func TestArenaPool(t *testing.T) {
	var p arenaPool
	small := p.get(100)
	if len(small) != 0 || cap(small) < 100 {
		t.Fatalf("get(100): len %d cap %d", len(small), cap(small))
	}
	p.put(append(small, "rendered"...))
	if got := p.get(10); cap(got) != cap(small) || len(got) != 0 {
		t.Fatalf("get(10) after put: len %d cap %d, want the pooled buffer emptied", len(got), cap(got))
	}
	// A pooled buffer too small for the request is kept, not handed out.
	p.put(small)
	if got := p.get(1000); cap(got) < 1000 {
		t.Fatalf("get(1000): cap %d", cap(got))
	}
	if len(p.free) != 1 {
		t.Fatalf("%d buffers pooled, want the small one kept", len(p.free))
	}
	// The pool holds at most maxPooledBytes.
	p = arenaPool{}
	for range 3 {
		p.put(make([]byte, 0, maxPooledBytes/2))
	}
	if p.bytes > maxPooledBytes || len(p.free) != 2 {
		t.Fatalf("pool holds %d bytes in %d buffers, want at most %d", p.bytes, len(p.free), maxPooledBytes)
	}
	p.get(1)
	if p.bytes != maxPooledBytes/2 {
		t.Fatalf("pool holds %d bytes after a get, want %d", p.bytes, maxPooledBytes/2)
	}
}
