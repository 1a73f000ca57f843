package sqlscan

import "testing"

func benchClassify(b *testing.B, sql string) {
	s := NewScanner(nil)
	q := []byte(sql)
	s.Classify(q) // grow the scratch buffers
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	b.ResetTimer()
	for b.Loop() {
		st := s.Classify(q)
		if len(st) == 0 {
			b.Fatal("no statement")
		}
	}
}

func BenchmarkClassifySimpleSelect(b *testing.B) {
	benchClassify(b, "SELECT id, name FROM users WHERE id = $1")
}

func BenchmarkClassifyInsert(b *testing.B) {
	benchClassify(b, "INSERT INTO orders (user_id, amount, created_at) VALUES ($1, $2, now())")
}

func BenchmarkClassifyJoin(b *testing.B) {
	benchClassify(b, `SELECT o.id, u.Name, sum(i.price * i.qty) AS total
FROM public.orders o JOIN users u ON u.id = o.user_id
LEFT JOIN order_items i ON i.order_id = o.id
WHERE o.created_at > now() - interval '1 day' AND u.status = 'active'
GROUP BY o.id, u.name ORDER BY total DESC LIMIT 20`)
}

func BenchmarkClassifyCTEWrite(b *testing.B) {
	benchClassify(b, "WITH moved AS (DELETE FROM queue WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED) RETURNING *) INSERT INTO done SELECT * FROM moved")
}

func BenchmarkClassifyOneBegin(b *testing.B) {
	s := NewScanner(nil)
	q := []byte("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	b.ReportAllocs()
	for b.Loop() {
		_ = s.ClassifyOne(q)
	}
}
