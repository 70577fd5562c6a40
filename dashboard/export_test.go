package dashboard

// FrontDoorStreams is the number of streams the front door has served
// itself (0 before Serve or without a front door).
func (s *Server) FrontDoorStreams() int64 {
	if fd := s.front.Load(); fd != nil {
		return fd.taken.Load()
	}
	return 0
}

// HasFrontDoor reports whether Serve reads request heads itself.
func (s *Server) HasFrontDoor() bool { return s.front.Load() != nil }
