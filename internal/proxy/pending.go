package proxy

// pending is one request sent to (or answered for) a server whose response
// has not ended yet. The queue of them keeps the proxy's own messages
// (injected Parse, parameter SETs, resets) and its synthesized answers
// (ParseComplete for a statement the server already has, CloseComplete) in
// the exact order PostgreSQL would produce them.
type pending struct {
	typ     byte // frontend message type: P B D E C S Q F
	flags   uint8
	stmt    *Stmt
	name    string // the client's statement name (Parse, Close, DEALLOCATE)
	errCode string // pReplaceErr: the error the client gets instead of the server's
	errMsg  string
}

const (
	pSwallow    uint8 = 1 << iota // injected by the proxy: its response is not forwarded
	pSynth                        // never sent: answer with a synthesized response when it reaches the head
	pQuiet                        // injected query: errors are swallowed too (parameter sync, resets)
	pDescStmt                     // Describe of a statement: ParameterDescription comes before the end
	pDealloc                      // synthesized answer to a simple-query DEALLOCATE
	pReplaceErr                   // the server\'s error is replaced by errCode/errMsg
)

// pendingQueue is a ring buffer; it grows only for deep pipelines.
type pendingQueue struct {
	buf  []pending
	head int
	n    int
}

func (q *pendingQueue) push(p pending) {
	if q.n == len(q.buf) {
		nb := make([]pending, max(8, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = p
	q.n++
}

func (q *pendingQueue) peek() *pending {
	if q.n == 0 {
		return nil
	}
	return &q.buf[q.head]
}

func (q *pendingQueue) pop() pending {
	p := q.buf[q.head]
	q.buf[q.head] = pending{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return p
}

func (q *pendingQueue) reset() {
	for q.n > 0 {
		q.pop()
	}
	q.head = 0
}

// endsUnit reports whether backend message typ ends the response to a
// pending request p (ErrorResponse is handled by the caller).
func endsUnit(p *pending, typ byte) bool {
	switch p.typ {
	case 'P':
		return typ == '1'
	case 'B':
		return typ == '2'
	case 'D':
		return typ == 'T' || typ == 'n'
	case 'E':
		return typ == 'C' || typ == 'I' || typ == 's'
	case 'C':
		return typ == '3'
	case 'S', 'Q', 'F':
		return typ == 'Z'
	}
	return false
}
