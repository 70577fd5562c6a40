package main

import (
	"errors"
	"net"
	"sync"
	"time"
)

// socket is the listening socket, bound once for the life of the process and
// served in turns: by the standby while the store is not open yet, then by
// the server, and — when a shared store loses its epoch and serving starts
// over — by the standby and a new server again. Clients keep connecting to
// the same address throughout; between two turns their connections wait in
// the kernel's backlog instead of being refused.
type socket struct {
	ln *net.TCPListener

	mu    sync.Mutex
	spare []net.Conn // accepted as a turn ended: the next turn serves them
}

func newSocket(ln net.Listener) (*socket, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("listener is not TCP")
	}
	return &socket{ln: tl}, nil
}

// turn returns a listener for the next server to take. Only one turn is open
// at a time: close the last before taking the next.
func (s *socket) turn() *turn { return &turn{s: s} }

// Close closes the socket and any connection no turn took.
func (s *socket) Close() error {
	s.mu.Lock()
	for _, c := range s.spare {
		_ = c.Close()
	}
	s.spare = nil
	s.mu.Unlock()
	return s.ln.Close()
}

func (s *socket) takeSpare() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.spare) == 0 {
		return nil
	}
	c := s.spare[0]
	s.spare = s.spare[1:]
	return c
}

func (s *socket) putSpare(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spare = append(s.spare, c)
}

// turn is one server's use of the socket: a net.Listener whose Close ends
// its Accepts without closing the socket.
type turn struct {
	s       *socket
	mu      sync.Mutex
	closed  bool
	accepts sync.WaitGroup // Accept calls in progress
}

// Accept returns the next connection: one a previous turn left, else a new
// one. After Close it returns net.ErrClosed.
func (t *turn) Accept() (net.Conn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, net.ErrClosed
	}
	t.accepts.Add(1)
	t.mu.Unlock()
	defer t.accepts.Done()
	if c := t.s.takeSpare(); c != nil {
		return c, nil
	}
	c, err := t.s.ln.Accept()
	if t.isClosed() {
		if err == nil {
			t.s.putSpare(c)
		}
		return nil, net.ErrClosed
	}
	return c, err
}

func (t *turn) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close ends the turn: an Accept blocked on the socket returns (a deadline in
// the past wakes it), and the socket is left open for the next turn.
func (t *turn) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	err := t.s.ln.SetDeadline(time.Now())
	t.accepts.Wait()
	if derr := t.s.ln.SetDeadline(time.Time{}); err == nil {
		err = derr
	}
	return err
}

func (t *turn) Addr() net.Addr { return t.s.ln.Addr() }
