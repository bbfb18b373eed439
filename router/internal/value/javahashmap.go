package value

// javaHashMapOrder returns the order in which a java.util.HashMap iterates
// keys put into it in order, as indexes into hashes: hashes[i] is key i's
// HashMap.hash (its hashCode, spread: h ^ h>>>16). capacity is the
// constructor's initial capacity, 0 for new HashMap<>(). cmp orders two
// distinct keys of equal hash (their compareTo), which only a tree bucket
// asks. Debezium writes maps it builds as HashMaps (hstore as a map, a
// SparseDoubleVector's entries) in their iteration order, through Kafka
// Connect's JSON converter: to be Debezium's bytes, pgjet follows it.
//
// The layout is simulated as OpenJDK 17 lays it out: a table of
// power-of-two size, a key's bucket its hash masked by the size, doubling
// past three quarters full; a bucket of more than eight keys doubles a
// table of fewer than 64 buckets, else becomes a red-black tree ordered by
// hash, whose root leads the bucket's order and whose new nodes follow
// their tree parent. testdata/javahashmap/orders.txt holds orders printed by Java.
func javaHashMapOrder(hashes []int32, capacity int, cmp func(a, b int) int) []int {
	m := jmap{cmp: cmp}
	if capacity > 0 {
		m.threshold = tableSizeFor(capacity)
	}
	nodes := make([]jnode, len(hashes))
	for i, h := range hashes {
		nodes[i] = jnode{key: i, hash: h}
		m.put(&nodes[i])
	}
	out := make([]int, 0, len(hashes))
	for _, n := range m.tab {
		for ; n != nil; n = n.next {
			out = append(out, n.key)
		}
	}
	return out
}

// jnode is an entry: a plain bucket's list (next) or, in a tree bucket,
// also a red-black tree node (tree set), whose list order is the
// iteration order.
type jnode struct {
	key                 int // its index
	hash                int32
	next, prev          *jnode
	parent, left, right *jnode
	red, tree           bool
}

type jmap struct {
	tab       []*jnode
	size      int
	threshold int
	cmp       func(a, b int) int
}

// less: a before b in a tree (HashMap compares hashes as signed ints).
func (m *jmap) less(a, b *jnode) bool {
	if a.hash != b.hash {
		return a.hash < b.hash
	}
	return m.cmp(a.key, b.key) < 0
}

// bucket is n's bucket in the current table.
func (m *jmap) bucket(n *jnode) int { return int(uint32(n.hash)) & (len(m.tab) - 1) }

const (
	treeifyAt   = 8  // a bucket of more keys than this becomes a tree
	untreeifyAt = 6  // a tree split to this many keys or fewer becomes a list
	minTreeTab  = 64 // a smaller table doubles instead
)

func tableSizeFor(c int) int {
	n := 1
	for n < c {
		n <<= 1
	}
	return n
}

func (m *jmap) put(x *jnode) {
	if m.tab == nil {
		m.resize()
	}
	i := m.bucket(x)
	p := m.tab[i]
	switch {
	case p == nil:
		m.tab[i] = x
	case p.tree:
		m.putTree(i, x)
	default:
		for count := 0; ; count++ {
			if p.next == nil {
				p.next = x
				if count >= treeifyAt-1 {
					m.treeifyBin(x)
				}
				break
			}
			p = p.next
		}
	}
	m.size++
	if m.size > m.threshold {
		m.resize()
	}
}

func (m *jmap) resize() {
	oldCap, oldThr := len(m.tab), m.threshold
	var newCap, newThr int
	switch {
	case oldCap > 0:
		newCap = oldCap << 1
		if oldCap >= 16 {
			newThr = oldThr << 1
		}
	case oldThr > 0:
		newCap = oldThr
	default:
		newCap, newThr = 16, 12
	}
	if newThr == 0 {
		newThr = int(float32(newCap) * 0.75)
	}
	old := m.tab
	m.tab, m.threshold = make([]*jnode, newCap), newThr
	for j, e := range old {
		switch {
		case e == nil:
		case e.next == nil:
			m.tab[m.bucket(e)] = e
		case e.tree:
			m.split(e, j, oldCap)
		default:
			var lo, hi jlist
			for ; e != nil; e = e.next {
				if int(uint32(e.hash))&oldCap == 0 {
					lo.add(e)
				} else {
					hi.add(e)
				}
			}
			m.tab[j], m.tab[j+oldCap] = lo.end(), hi.end()
		}
	}
}

// jlist gathers nodes in order (their next and prev links rewritten).
type jlist struct {
	head, tail *jnode
	n          int
}

func (l *jlist) add(e *jnode) {
	e.prev = l.tail
	if l.tail == nil {
		l.head = e
	} else {
		l.tail.next = e
	}
	l.tail = e
	l.n++
}

func (l *jlist) end() *jnode {
	if l.tail != nil {
		l.tail.next = nil
	}
	return l.head
}

func (m *jmap) treeifyBin(x *jnode) {
	if len(m.tab) < minTreeTab {
		m.resize()
		return
	}
	i := m.bucket(x)
	var prev *jnode
	for e := m.tab[i]; e != nil; e = e.next {
		e.tree, e.prev = true, prev
		prev = e
	}
	m.treeify(m.tab[i])
}

// treeify builds a tree of the list from hd, in list order, and moves its
// root to the bucket's front.
func (m *jmap) treeify(hd *jnode) {
	var root *jnode
	for x := hd; x != nil; x = x.next {
		x.left, x.right = nil, nil
		if root == nil {
			x.parent, x.red = nil, false
			root = x
			continue
		}
		for p := root; ; {
			xp := p
			left := m.less(x, p)
			if left {
				p = p.left
			} else {
				p = p.right
			}
			if p == nil {
				x.parent = xp
				if left {
					xp.left = x
				} else {
					xp.right = x
				}
				root = balanceInsertion(root, x)
				break
			}
		}
	}
	m.moveRootToFront(root)
}

func (m *jmap) putTree(i int, x *jnode) {
	root := m.tab[i]
	for root.parent != nil {
		root = root.parent
	}
	for p := root; ; {
		xp := p
		left := m.less(x, p)
		if left {
			p = p.left
		} else {
			p = p.right
		}
		if p != nil {
			continue
		}
		// The new node goes into the list right after its tree parent.
		x.tree, x.next, x.prev, x.parent = true, xp.next, xp, xp
		if left {
			xp.left = x
		} else {
			xp.right = x
		}
		if xp.next != nil {
			xp.next.prev = x
		}
		xp.next = x
		m.moveRootToFront(balanceInsertion(root, x))
		return
	}
}

func (m *jmap) moveRootToFront(root *jnode) {
	i := m.bucket(root)
	first := m.tab[i]
	if root == first {
		return
	}
	if root.next != nil {
		root.next.prev = root.prev
	}
	if root.prev != nil {
		root.prev.next = root.next
	}
	if first != nil {
		first.prev = root
	}
	root.next, root.prev = first, nil
	m.tab[i] = root
}

// split divides the tree bucket at index j of the old table between j and
// j+bit of the new one, keeping list order; a part of few keys becomes a
// list again, a part left with others is a new tree.
func (m *jmap) split(b *jnode, j, bit int) {
	var lo, hi jlist
	for e := b; e != nil; {
		next := e.next
		e.next = nil
		if int(uint32(e.hash))&bit == 0 {
			lo.add(e)
		} else {
			hi.add(e)
		}
		e = next
	}
	place := func(l *jlist, other *jlist, at int) {
		hd := l.end()
		if hd == nil {
			return
		}
		if l.n <= untreeifyAt {
			for e := hd; e != nil; e = e.next {
				e.tree, e.parent, e.left, e.right, e.prev = false, nil, nil, nil, nil
			}
			m.tab[at] = hd
			return
		}
		m.tab[at] = hd
		if other.head != nil { // else the tree is whole, as it was
			m.treeify(hd)
		}
	}
	place(&lo, &hi, j)
	place(&hi, &lo, j+bit)
}

func rotateLeft(root, p *jnode) *jnode {
	if p == nil || p.right == nil {
		return root
	}
	r := p.right
	p.right = r.left
	if r.left != nil {
		r.left.parent = p
	}
	r.parent = p.parent
	switch pp := p.parent; {
	case pp == nil:
		root = r
		r.red = false
	case pp.left == p:
		pp.left = r
	default:
		pp.right = r
	}
	r.left = p
	p.parent = r
	return root
}

func rotateRight(root, p *jnode) *jnode {
	if p == nil || p.left == nil {
		return root
	}
	l := p.left
	p.left = l.right
	if l.right != nil {
		l.right.parent = p
	}
	l.parent = p.parent
	switch pp := p.parent; {
	case pp == nil:
		root = l
		l.red = false
	case pp.right == p:
		pp.right = l
	default:
		pp.left = l
	}
	l.right = p
	p.parent = l
	return root
}

// balanceInsertion restores the red-black rules after x was added and
// returns the root, as HashMap.TreeNode.balanceInsertion does.
func balanceInsertion(root, x *jnode) *jnode {
	x.red = true
	for {
		xp := x.parent
		if xp == nil {
			x.red = false
			return x
		}
		xpp := xp.parent
		if !xp.red || xpp == nil {
			return root
		}
		if xppl := xpp.left; xp == xppl {
			if xppr := xpp.right; xppr != nil && xppr.red {
				xppr.red, xp.red, xpp.red = false, false, true
				x = xpp
				continue
			}
			if x == xp.right {
				x = xp
				root = rotateLeft(root, x)
				xp = x.parent
				xpp = nil
				if xp != nil {
					xpp = xp.parent
				}
			}
			if xp != nil {
				xp.red = false
				if xpp != nil {
					xpp.red = true
					root = rotateRight(root, xpp)
				}
			}
		} else {
			if xppl != nil && xppl.red {
				xppl.red, xp.red, xpp.red = false, false, true
				x = xpp
				continue
			}
			if x == xp.left {
				x = xp
				root = rotateRight(root, x)
				xp = x.parent
				xpp = nil
				if xp != nil {
					xpp = xp.parent
				}
			}
			if xp != nil {
				xp.red = false
				if xpp != nil {
					xpp.red = true
					root = rotateLeft(root, xpp)
				}
			}
		}
	}
}
