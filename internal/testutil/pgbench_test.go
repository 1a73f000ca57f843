package testutil

import "testing"

const pgbenchOut = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 50
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 12345
number of failed transactions: 7 (0.057%)
latency average = 40.123 ms
initial connection time = 120.5 ms
tps = 1234.567890 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	r := ParsePgbench(pgbenchOut)
	if r.TPS != 1234.567890 || r.Processed != 12345 || r.Failed != 7 {
		t.Errorf("got %+v", r)
	}
	r = ParsePgbench("pgbench: error: connection to server failed\n")
	if r.TPS != -1 || r.Processed != -1 || r.Failed != -1 {
		t.Errorf("got %+v", r)
	}
}
