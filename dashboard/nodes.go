package dashboard

import "time"

// NodeStatus is what /api/v1/status says about the instances sharing the
// store: the name of this one, and every instance seen appending to the ring
// whose newest frame is still retained (this one included once it has
// appended). With a store of its own, an instance lists only itself.
type NodeStatus struct {
	Node  string     `json:"node"`
	Nodes []NodeSeen `json:"nodes"`
}

// NodeSeen is one instance in NodeStatus.
type NodeSeen struct {
	Name string `json:"name"`
	// Head is the ID of the newest retained frame it appended ("" when it
	// has appended none yet).
	Head string `json:"head,omitempty"`
	// LastSeen is when this instance saw that frame committed; absent for
	// frames committed before it started.
	LastSeen *time.Time `json:"last_seen,omitempty"`
}
