package proxy

// clientQueue is an intrusive FIFO of clients (wait queues, login list).
// A client is in at most one queue at a time through qprev/qnext, and
// tracked by q so removal is O(1).
type clientQueue struct {
	head, tail *Client
	n          int
}

func (q *clientQueue) push(c *Client) {
	c.q = q
	c.qprev, c.qnext = q.tail, nil
	if q.tail != nil {
		q.tail.qnext = c
	} else {
		q.head = c
	}
	q.tail = c
	q.n++
}

func (q *clientQueue) remove(c *Client) {
	if c.q != q {
		return
	}
	if c.qprev != nil {
		c.qprev.qnext = c.qnext
	} else {
		q.head = c.qnext
	}
	if c.qnext != nil {
		c.qnext.qprev = c.qprev
	} else {
		q.tail = c.qprev
	}
	c.qprev, c.qnext, c.q = nil, nil, nil
	q.n--
}

func (q *clientQueue) pop() *Client {
	c := q.head
	if c != nil {
		q.remove(c)
	}
	return c
}

// serverList is an intrusive list of servers through iprev/inext (a pool's
// idle list, used LIFO so the warmest connection is reused first).
type serverList struct {
	head *Server
	n    int
}

func (l *serverList) pushFront(s *Server) {
	s.inList = l
	s.iprev, s.inext = nil, l.head
	if l.head != nil {
		l.head.iprev = s
	}
	l.head = s
	l.n++
}

func (l *serverList) remove(s *Server) {
	if s.inList != l {
		return
	}
	if s.iprev != nil {
		s.iprev.inext = s.inext
	} else {
		l.head = s.inext
	}
	if s.inext != nil {
		s.inext.iprev = s.iprev
	}
	s.iprev, s.inext, s.inList = nil, nil, nil
	l.n--
}
