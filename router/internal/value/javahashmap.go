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
	key        int // its index
	hash       int32
	next, prev *jnode
	parent     *jnode
	child      [2]*jnode // left, right
	red, tree  bool
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
		x.child = [2]*jnode{}
		if root == nil {
			x.parent, x.red = nil, false
			root = x
			continue
		}
		m.attach(root, x)
		root = balanceInsertion(root, x)
	}
	m.moveRootToFront(root)
}

// attach adds x as a leaf of the tree of root, ordered by less.
func (m *jmap) attach(root, x *jnode) {
	for p := root; ; {
		d := right
		if m.less(x, p) {
			d = left
		}
		if p.child[d] == nil {
			x.parent = p
			p.child[d] = x
			return
		}
		p = p.child[d]
	}
}

func (m *jmap) putTree(i int, x *jnode) {
	root := m.tab[i]
	for root.parent != nil {
		root = root.parent
	}
	x.tree = true
	m.attach(root, x)
	// The new node goes into the list right after its tree parent.
	xp := x.parent
	x.next, x.prev = xp.next, xp
	if xp.next != nil {
		xp.next.prev = x
	}
	xp.next = x
	m.moveRootToFront(balanceInsertion(root, x))
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
				e.tree, e.parent, e.child, e.prev = false, nil, [2]*jnode{}, nil
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

// Sides of a tree node's children.
const (
	left  = 0
	right = 1
)

// rotate lifts p's child on side 1-d into p's place and puts p below it
// on side d: d left is HashMap.TreeNode.rotateLeft, d right rotateRight.
func rotate(root, p *jnode, d int) *jnode {
	if p == nil || p.child[1-d] == nil {
		return root
	}
	c := p.child[1-d]
	p.child[1-d] = c.child[d]
	if c.child[d] != nil {
		c.child[d].parent = p
	}
	c.parent = p.parent
	switch pp := p.parent; {
	case pp == nil:
		root = c
		c.red = false
	case pp.child[left] == p:
		pp.child[left] = c
	default:
		pp.child[right] = c
	}
	c.child[d] = p
	p.parent = c
	return root
}

// balanceInsertion restores the red-black rules after x was added and
// returns the root, as HashMap.TreeNode.balanceInsertion does (its two
// mirrored halves as one, s the side of x's parent).
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
		s := right
		if xp == xpp.child[left] {
			s = left
		}
		if uncle := xpp.child[1-s]; uncle != nil && uncle.red {
			uncle.red, xp.red, xpp.red = false, false, true
			x = xpp
			continue
		}
		if x == xp.child[1-s] {
			x = xp
			root = rotate(root, x, s)
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
				root = rotate(root, xpp, 1-s)
			}
		}
	}
}
