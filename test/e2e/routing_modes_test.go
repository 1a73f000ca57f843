package e2e

import (
	"testing"
	"time"
)

// TestRoutingDefaultRoutes: default_route and per-user / per-database
// routes (user_routes wins over database_routes), and primary_reads.
func TestRoutingDefaultRoutes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keys     []string
		replicas bool // reads may land on replicas
	}{
		{"user routed to the primary", []string{`user_routes = ["app=primary"]`}, false},
		{"database routed to the primary", []string{`database_routes = ["app=primary"]`}, false},
		{"user auto wins over database primary", []string{`database_routes = ["app=primary"]`, `user_routes = ["app=auto"]`}, true},
		{"default_route primary", []string{`default_route = "primary"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := routingProxy(t, "round_robin", tc.keys...)
			ctx := testCtx(t, 30*time.Second)
			c := routingConns(t, ctx, p, 1)[0]
			onReplica := 0
			for range 10 {
				var port int
				if err := c.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
					t.Fatal(err)
				}
				if port != routingPrimaryPort {
					onReplica++
				}
			}
			if tc.replicas && onReplica == 0 {
				t.Errorf("no read reached a replica")
			}
			if !tc.replicas && onReplica != 0 {
				t.Errorf("%d of 10 reads reached a replica, want 0", onReplica)
			}
		})
	}
}
